"""OTLP attributes: the GenAI attribute names `_otlp_spans` reads (its docstring has the mapping),
attribute values, and what becomes a record's tags and content.

Tags: `costlens.tag.<name>` -> `<name>`; `service.name` -> `service`; `deployment.environment(.name)`
-> `environment`; `enduser.id` / `user.id` -> `user`; `gen_ai.response.id` is not kept (unique per
call); every other span and resource attribute under its own name (span over resource), as text. Kept bounded:
at most 64 tags, names of at most 128 characters that a report can group by, values of at most
256 characters (longer ones, nested values and bytes are skipped); prompt and completion content,
`telemetry.sdk.*`, `service.instance.id` (a new random id per process) and the attributes mapped
to record fields are never tags. The `api_key` tag comes only from the request's API key. Prompt and
completion text (`gen_ai.input.messages`, `gen_ai.output.messages`, `gen_ai.system_instructions`,
`gen_ai.prompt`, `gen_ai.completion`, OpenLLMetry's `gen_ai.prompt.<n>.content`) becomes the record's
`content`, redacted and cut as the pipeline does, only when costlens stores content.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from costlens.pipeline._content import redact
from costlens.usage import USAGE_PARTS

if TYPE_CHECKING:
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

__all__ = ["MAX_TAGS", "attribute_tags", "attributes", "content_of", "merge_tags"]

PROVIDER = ("gen_ai.provider.name", "gen_ai.system")
OPERATION = ("gen_ai.operation.name",)
REQUEST_MODEL = ("gen_ai.request.model",)
RESPONSE_MODEL = ("gen_ai.response.model",)
INPUT = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
OUTPUT = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")
CACHE_READ = (
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_read_input_tokens",
    "gen_ai.usage.input_tokens.cached",
)
CACHE_WRITE = (
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_creation_input_tokens",
    "gen_ai.usage.input_tokens.cache_write",
)
REASONING = (
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.usage.output_tokens.reasoning",
    "gen_ai.usage.reasoning_tokens",
    "gen_ai.openai.usage.reasoning_tokens",
    "openai.usage.reasoning_tokens",
    "costlens.usage.reasoning_tokens",
)
SERVICE_TIER = (
    "openai.response.service_tier",
    "gen_ai.openai.response.service_tier",
    "gen_ai.response.service_tier",
    "costlens.service_tier",
    "openai.request.service_tier",
    "gen_ai.openai.request.service_tier",
    "gen_ai.request.service_tier",
)
ERROR_TYPE = ("error.type",)
HTTP_STATUS = ("http.response.status_code",)
CALL_ID = "costlens.call.id"
PARTS = tuple(f"costlens.usage.{name}" for name in USAGE_PARTS)
#: Operations that are not one model call (their usage, if any, sums the calls inside them).
NOT_CALLS = frozenset({"invoke_agent", "create_agent", "execute_tool", "invoke_workflow"})

MAX_TAGS = 64
MAX_TAG_NAME = 128
MAX_TAG_VALUE = 256
_RENAMED = {
    "service.name": "service",
    "deployment.environment.name": "environment",
    "deployment.environment": "environment",
    "enduser.id": "user",
    "user.id": "user",
}
_MAPPED = frozenset(
    {
        *PROVIDER, *OPERATION, *REQUEST_MODEL, *RESPONSE_MODEL, *INPUT, *OUTPUT, *CACHE_READ,
        *CACHE_WRITE, *REASONING, *SERVICE_TIER, *ERROR_TYPE, *HTTP_STATUS, *PARTS, CALL_ID,
        "gen_ai.usage.total_tokens", "llm.usage.total_tokens", "api_key",
        # unique per call: as a tag it would make every record's tag set new (SQL stores keep one row
        # per distinct tag set) and it groups nothing
        "gen_ai.response.id",
    }
)  # fmt: skip
#: Attribute name prefixes that hold prompt or completion text (never tags) or SDK noise.
_CONTENT_IN = ("gen_ai.system_instructions", "gen_ai.input.messages", "gen_ai.prompt")
_CONTENT_OUT = ("gen_ai.output.messages", "gen_ai.completion")
_NOT_TAGS = (
    *_CONTENT_IN, *_CONTENT_OUT, "gen_ai.tool.definitions", "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result", "llm.prompts", "llm.completions", "input.value", "output.value",
    "traceloop.entity.input", "traceloop.entity.output", "telemetry.sdk.", "telemetry.auto.",
    "service.instance.id", "costlens.",
)  # fmt: skip
_TAG_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")  # what a report may group by (store._base)


def _scalar(value: AnyValue) -> object:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "double_value":
        return value.double_value
    return None


def _value(value: AnyValue) -> object:
    """A scalar, a tuple of scalars (arrays), or None (maps, bytes, nested arrays, empty)."""
    if value.WhichOneof("value") == "array_value":
        items = tuple(_scalar(v) for v in value.array_value.values)
        return None if any(v is None for v in items) else items
    return _scalar(value)


def attributes(pairs: Iterable[KeyValue]) -> dict[str, object]:
    """An OTLP attribute list as a dict (the last of a repeated key wins)."""
    return {kv.key: _value(kv.value) for kv in pairs}


@lru_cache(maxsize=4096)
def _tag_name(key: str) -> str | None:
    """The tag an attribute becomes, or None when it is not one."""
    renamed = _RENAMED.get(key)
    if renamed is not None:
        return renamed
    if key in _MAPPED or key.startswith(_NOT_TAGS):
        return None
    if len(key) > MAX_TAG_NAME or not _TAG_NAME.match(key):
        return None
    return key


def _tag_value(value: object) -> str | None:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, tuple):
        text = ",".join(_tag_value(v) or "" for v in value)
    elif value is None:
        return None
    else:
        text = str(value)
    return text if len(text) <= MAX_TAG_VALUE else None


def attribute_tags(attrs: Mapping[str, object]) -> dict[str, str]:
    """The tags one attribute set gives (`costlens.tag.*` first: they name tags on purpose)."""
    tags: dict[str, str] = {}
    for key, value in attrs.items():
        if key.startswith("costlens.tag."):
            name = key[len("costlens.tag.") :]
            text = _tag_value(value)
            if text is not None and name != "api_key" and _TAG_NAME.match(name) and len(name) <= MAX_TAG_NAME:
                tags[name] = text
    for key, value in attrs.items():
        renamed = _tag_name(key)
        if renamed is not None and renamed not in tags:
            text = _tag_value(value)
            if text is not None:
                tags[renamed] = text
    return tags


def merge_tags(*layers: Mapping[str, str]) -> dict[str, str]:
    """Tags from the most to the least important layer, at most `MAX_TAGS`."""
    tags: dict[str, str] = {}
    for layer in layers:
        for name, value in layer.items():
            if len(tags) >= MAX_TAGS:
                return tags
            tags.setdefault(name, value)
    return tags


def _is_content(key: str, side: tuple[str, ...]) -> bool:
    """Whether an attribute holds text of one side: the conventions' names, or OpenLLMetry's
    indexed `gen_ai.prompt.<n>.content` / `gen_ai.completion.<n>.content`."""
    return key in side or (key.startswith(side) and key.endswith(".content"))


def content_of(attrs: Mapping[str, object], max_chars: int) -> dict[str, Any] | None:
    """The prompt and completion text the span carries, as `CallRecord.content` keeps it."""
    sides: dict[str, list[str]] = {"input": [], "output": []}
    for key, value in attrs.items():
        if isinstance(value, str):
            if _is_content(key, _CONTENT_IN):
                sides["input"].append(value)
            elif _is_content(key, _CONTENT_OUT):
                sides["output"].append(value)
    if not sides["input"] and not sides["output"]:
        return None
    out: dict[str, Any] = {"truncated": False}
    for side, texts in sides.items():
        text = redact("\n".join(texts))
        out[side] = text[:max_chars]
        out["truncated"] = out["truncated"] or len(text) > max_chars
    return out
