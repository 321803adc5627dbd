"""A call's life: `Request` in, `Call` through the steps, `CallRecord` out to the sinks.

    pipeline = Pipeline({"budget": BudgetStep(engine)}, sinks=[records.append])
    call = pipeline.start(Request.of("openai", "chat", {"model": "gpt-4o-mini", "messages": [...]}))
    ...                                  # make the call with call.request.body
    call.usage = Usage(input_tokens=12, output_tokens=30)
    pipeline.finish(call)                # price, settle, record

The SDK wrappers (`costlens.instrument`) and the gateway both feed a pipeline; steps (router,
budgets) plug into its named slots; `costlens.config` builds the process's pipeline.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from costlens.pipeline._call import Call, OutputMissing, StreamCall
from costlens.pipeline._pipeline import Pipeline, Sink
from costlens.pipeline._request import Request
from costlens.pipeline._step import SLOTS, LeanStep, Step

if TYPE_CHECKING:
    from costlens.pipeline._estimate import DEFAULT_MAX_OUTPUT, Estimate, count_input, estimate

__all__ = [
    "DEFAULT_MAX_OUTPUT",
    "SLOTS",
    "Call",
    "Estimate",
    "LeanStep",
    "OutputMissing",
    "Pipeline",
    "Request",
    "Sink",
    "Step",
    "StreamCall",
    "count_input",
    "estimate",
]

# The estimate (and the tokenizer helpers it needs) loads on first use: tracking a call whose usage
# arrives never needs it, and `track()` stays cheap to import.
_LAZY = {"DEFAULT_MAX_OUTPUT", "Estimate", "count_input", "estimate"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'costlens.pipeline' has no attribute {name!r}")
    value = getattr(import_module("costlens.pipeline._estimate"), name)
    globals()[name] = value
    return value
