"""Read a scenario file (TOML, YAML or JSON) with every number exact, and explain what is wrong.

Numbers are read as `Decimal` (TOML and JSON floats via `parse_float`, YAML floats from their
source text), never through `float`. A syntax error names the file and line; a schema error names
the file, the field (dotted path, with path names instead of list indexes) and what to do.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from costlens._errors import ConfigError
from costlens.roi._scenario import Scenario

__all__ = ["ScenarioError", "load_scenario", "parse_scenario", "read_data"]

_DOCS = "the scenario format is described in README.md, section 'ROI: prompt engineering vs fine-tuning'"


class ScenarioError(ConfigError):
    """An unreadable or invalid scenario; the message names the file, the field and the fix."""


def read_data(path: Path) -> dict[str, Any]:
    """The file's data as a dict, numbers as Decimal; ScenarioError on syntax errors (with the line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(
            f"cannot read scenario file {path}: {exc.strerror or exc}; check the path"
        ) from exc
    suffix = path.suffix.lower()
    try:
        if suffix in (".yaml", ".yml"):
            data = _yaml(text)
        elif suffix == ".json":
            data = json.loads(text, parse_float=Decimal)
        else:
            import tomllib

            data = tomllib.loads(text, parse_float=Decimal)
    except ValueError as exc:  # tomllib.TOMLDecodeError and json.JSONDecodeError are ValueErrors
        found = re.search(r"line (\d+)", str(exc))
        where = f", line {found.group(1)}" if found else ""
        raise ScenarioError(
            f"invalid syntax in scenario file {path}{where}: {exc}; fix the syntax there"
        ) from None
    if not isinstance(data, dict):
        raise ScenarioError(f"scenario file {path}: expected a table of settings at the top level ({_DOCS})")
    return data


def _yaml(text: str) -> Any:
    try:
        import yaml
    except ImportError:
        raise ScenarioError("reading YAML scenarios needs PyYAML: pip install 'llm-costlens[yaml]'") from None

    class _Loader(yaml.SafeLoader):  # type: ignore[misc]
        """SafeLoader that keeps floats exact (Decimal from the source text)."""

    def _decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal:
        return Decimal(loader.construct_scalar(node).replace("_", ""))

    _Loader.add_constructor("tag:yaml.org,2002:float", _decimal)
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        raise ValueError(f"{line}{exc}") from None


def parse_scenario(data: dict[str, Any], origin: str = "scenario") -> Scenario:
    """Validate data into a Scenario; ScenarioError names `origin`, the first bad field and the fix."""
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = _loc(error["loc"], data) or "(top level)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ScenarioError(
            f"scenario {origin}: field {where}: {error['msg']}{more}; fix that field ({_DOCS})"
        ) from None


def _loc(loc: tuple[int | str, ...], data: Any) -> str:
    """Pydantic's location as a dotted path, with `paths[1]` shown as `paths[1] ("fine-tuned")`."""
    parts: list[str] = []
    node = data
    tags = {"prompt", "switch", "fine_tuned", "hybrid", "function-after[_names(), Scenario]"}
    for item in loc:
        if isinstance(item, int):
            name = (
                node[item].get("name")
                if isinstance(node, list) and item < len(node) and isinstance(node[item], dict)
                else None
            )
            parts[-1] += f"[{item}]" + (f' ("{name}")' if name else "")
            node = node[item] if isinstance(node, list) and item < len(node) else None
            continue
        if item in tags or "[" in str(item):
            continue  # the discriminator tag or a validator name pydantic puts in the location
        parts.append(str(item))
        node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts)


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file (.toml, .yaml/.yml or .json)."""
    path = Path(path)
    return parse_scenario(read_data(path), str(path))


def scenario_to_toml(scenario: Scenario) -> str:
    """The scenario as a TOML file `load_scenario` reads back (defaults and unset values left out)."""
    data = scenario.model_dump(exclude_defaults=True, exclude_none=True)
    data["paths"] = [
        p.model_dump(exclude_defaults=True, exclude_none=True) | {"kind": p.kind} for p in scenario.paths
    ]
    return "\n".join(_toml_table(data, ())) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def _toml_table(data: dict[str, Any], prefix: tuple[str, ...]) -> list[str]:
    """Scalars first, then sub-tables, then arrays of tables (whose own sub-tables follow each entry)."""
    lines = [f"{_toml_key(key)} = {_toml_value(v)}" for key, v in data.items() if not _is_table(v)]
    for key, value in data.items():
        name = ".".join(_toml_key(k) for k in (*prefix, key))
        if isinstance(value, dict):
            lines += ["", f"[{name}]", *_toml_table(value, (*prefix, key))]
        elif _is_table(value):
            for item in value:
                lines += ["", f"[[{name}]]", *_toml_table(item, (*prefix, key))]
    return lines


def _toml_key(key: str) -> str:
    """A bare key when TOML allows one (letters, digits, `_`, `-`), else a quoted one (`"eval upkeep"`)."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def _is_table(value: Any) -> bool:
    return isinstance(value, dict) or (isinstance(value, list) and bool(value) and isinstance(value[0], dict))
