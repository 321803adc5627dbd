"""Budget definitions: a scope, a limit in USD, a window, alert thresholds and a mode.

    costlens.Budget("chat-daily", limit_usd="5.00", window="day", timezone="Europe/Berlin",
                    scope={"feature": "chat", "user": "*"}, mode="downgrade", downgrade_to="gpt-4o-mini")

A scope selects calls by tags (`project`, `feature`, `user`, `api_key`, `environment`, or any tag)
and by the call's `model` and `provider`; every selector must match. A value may be one string,
a list of strings (any of them), or `"*"`: every value separately (one budget per user), and only
calls that carry the tag. An empty scope is global. Each (budget, `*` values) pair is one ledger
key, named like `chat-daily[user=u-42]`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, cast, get_args

from costlens._errors import ConfigError
from costlens.budgets._window import Window, parse_window
from costlens.usage import to_nanousd

__all__ = ["DEFAULT_THRESHOLDS", "Budget", "Mode", "Scope", "UnknownPricePolicy", "money"]

Mode = Literal["block", "downgrade", "warn"]
UnknownPricePolicy = Literal["block", "allow"]
DEFAULT_THRESHOLDS = (Decimal(50), Decimal(80), Decimal(100))
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,127}$")
#: Selector keys read from the call itself; every other key is a tag.
CALL_KEYS = ("model", "provider")
_ESCAPES = str.maketrans({"%": "%25", ",": "%2C", "=": "%3D", "[": "%5B", "]": "%5D"})


def money(value: object, what: str = "limit_usd") -> Decimal:
    """A positive USD amount as an exact Decimal (floats are read from their shortest repr)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ConfigError(f'{what} must be a number of US dollars such as "5.00", got {value!r}')
    try:
        amount = Decimal(str(value).strip().removeprefix("$")) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise ConfigError(f'{what} must be a number of US dollars such as "5.00", got {value!r}') from None
    if not amount.is_finite() or amount <= 0:
        raise ConfigError(f"{what} must be a positive amount of US dollars, got {value!r}")
    if Decimal(to_nanousd(amount)) != amount * 1_000_000_000:
        raise ConfigError(f"{what} {value!r} has more than 9 decimal places (costlens counts nano-dollars)")
    return amount


class Scope:
    """Selectors a call must all match; `None` as a value set means `*` (each value separately)."""

    __slots__ = ("_call", "_stars", "_tags", "selectors")

    def __init__(self, selectors: Mapping[str, str | Sequence[str]] | None = None) -> None:
        if selectors is not None and not isinstance(selectors, Mapping):
            raise ConfigError(
                f'scope must be a table of tag = value, such as {{ feature = "chat" }}, got {selectors!r}'
            )
        parsed: dict[str, tuple[str, ...] | None] = {}
        for key, raw in (selectors or {}).items():
            if not isinstance(key, str) or not key.strip():
                raise ConfigError(f"scope keys must be non-empty tag names, got {key!r}")
            parsed[key.strip()] = _values(key, raw)
        self.selectors: dict[str, tuple[str, ...] | None] = dict(sorted(parsed.items()))
        self._call = [(k, v) for k, v in self.selectors.items() if k in CALL_KEYS]
        self._tags = [(k, v) for k, v in self.selectors.items() if k not in CALL_KEYS]
        self._stars = [k for k, v in self.selectors.items() if v is None]

    def key_suffix(self, tags: Mapping[str, str], model: str, provider: str) -> str | None:
        """None when the call is out of scope; else '' or the `*` part of its key, `[user=u-42]`."""
        for key, allowed in self._call:
            if allowed is not None and (model if key == "model" else provider) not in allowed:
                return None
        for key, allowed in self._tags:
            tag = tags.get(key)
            if tag is None or (allowed is not None and tag not in allowed):
                return None
        if not self._stars:
            return ""
        parts = []
        for key in self._stars:
            value = model if key == "model" else provider if key == "provider" else tags[key]
            parts.append(f"{key}={value.translate(_ESCAPES)}")
        return "[" + ",".join(parts) + "]"

    def as_dict(self) -> dict[str, str | list[str]]:
        out: dict[str, str | list[str]] = {}
        for key, values in self.selectors.items():
            out[key] = "*" if values is None else values[0] if len(values) == 1 else list(values)
        return out

    def describe(self) -> str:
        if not self.selectors:
            return "global"
        return ", ".join(
            f"{k}={'|'.join(v) if isinstance(v, list) else v}" for k, v in self.as_dict().items()
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Scope) and self.selectors == other.selectors

    def __hash__(self) -> int:
        return hash(tuple(self.selectors.items()))

    def __repr__(self) -> str:
        return f"Scope({self.as_dict()!r})"


def _values(key: str, raw: object) -> tuple[str, ...] | None:
    if raw == "*":
        return None
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list | tuple) or not items:
        raise ConfigError(f"scope.{key} must be a value, a list of values, or '*' (each value separately)")
    for item in items:
        if not isinstance(item, str) or not item or item == "*":
            raise ConfigError(f"scope.{key}: {item!r} is not a tag value; use text, or '*' alone")
    return tuple(items)


class Budget:
    """One spending limit. Immutable; `costlens.budget(...)` builds one and puts it in force.

    `thresholds` are percentages of the limit (default 50, 80, 100) at which alerts fire, once per
    window. `mode`: `block` raises `BudgetExceeded` before a call that could pass the limit;
    `downgrade` sends it to `downgrade_to` instead (when that fits); `warn` lets it through and alerts.
    `unknown_price`: what to do with a model that has no price (default: `block`, except in `warn`
    mode, where calls are let through uncharged).
    """

    __slots__ = (
        "downgrade_to",
        "forecast",
        "limit_nanousd",
        "limit_usd",
        "mode",
        "name",
        "notify",
        "scope",
        "threshold_marks",
        "thresholds",
        "unknown_price",
        "window",
    )

    def __init__(
        self,
        name: str,
        *,
        limit_usd: Decimal | str | int | float,
        window: str | Window = "month",
        timezone: str = "UTC",
        scope: Mapping[str, str | Sequence[str]] | Scope | None = None,
        mode: str = "block",
        downgrade_to: str | None = None,
        thresholds: Sequence[Decimal | int | str] = DEFAULT_THRESHOLDS,
        forecast: bool = True,
        unknown_price: str | None = None,
        notify: Sequence[str] | None = None,
    ) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(
                f"budget name {name!r} is not valid: use letters, digits and _ . : / @ - (up to 128)"
            )
        self.name = name
        self.limit_usd = money(limit_usd)
        self.limit_nanousd = to_nanousd(self.limit_usd)
        self.window = window if isinstance(window, Window) else parse_window(window, timezone)
        self.scope = scope if isinstance(scope, Scope) else Scope(scope)
        self.mode: Mode = _choice(mode, "mode", get_args(Mode))
        self.downgrade_to = _downgrade_target(self.mode, downgrade_to)
        self.thresholds = _thresholds(thresholds)
        # The spend (nano-USD) at which each threshold is crossed: `spent * 100 >= pct * limit`, exactly,
        # as one integer comparison per threshold on every settle.
        self.threshold_marks = tuple(_crossed_at(pct, self.limit_nanousd) for pct in self.thresholds)
        if not isinstance(forecast, bool):
            raise ConfigError(f"forecast must be true or false, got {forecast!r}")
        self.forecast = forecast
        default = "allow" if self.mode == "warn" else "block"
        self.unknown_price: UnknownPricePolicy = _choice(
            unknown_price or default, "unknown_price", get_args(UnknownPricePolicy)
        )
        if notify is not None and (
            not isinstance(notify, list | tuple) or not all(isinstance(n, str) and n for n in notify)
        ):
            raise ConfigError(f"notify must be a list of alert sink names, got {notify!r}")
        self.notify = None if notify is None else tuple(notify)

    @property
    def enforced(self) -> bool:
        return self.mode != "warn"

    def key_for(self, tags: Mapping[str, str], model: str, provider: str) -> str | None:
        """The ledger key of a call in scope (`name` or `name[user=u-42]`), else None."""
        suffix = self.scope.key_suffix(tags, model, provider)
        return None if suffix is None else self.name + suffix

    def as_dict(self) -> dict[str, Any]:
        """The config-file form (what `costlens budgets set` writes and `list --format json` shows)."""
        out: dict[str, Any] = {"name": self.name, "limit_usd": format(self.limit_usd, "f")}
        out["window"] = self.window.spec
        if self.window.kind in ("day", "week", "month"):
            out["timezone"] = self.window.timezone
        out["scope"] = self.scope.as_dict()
        out["mode"] = self.mode
        if self.downgrade_to is not None:
            out["downgrade_to"] = self.downgrade_to
        out["thresholds"] = [
            int(t) if t == t.to_integral_value() else format(t, "f") for t in self.thresholds
        ]
        out["forecast"] = self.forecast
        out["unknown_price"] = self.unknown_price
        if self.notify is not None:
            out["notify"] = list(self.notify)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Budget:
        """The budget `as_dict()` describes (a definition recorded in the ledger); `ConfigError` when
        it is not one (written by a newer costlens, say)."""
        fields = dict(data)
        try:
            return cls(fields.pop("name"), **fields)
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"not a budget definition ({type(exc).__name__}: {exc})") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Budget) and self.as_dict() == other.as_dict()

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return (
            f"Budget({self.name!r}, limit_usd={format(self.limit_usd, 'f')!r}, "
            f"window={self.window.describe()!r}, "
            f"scope={self.scope.describe()!r}, mode={self.mode!r})"
        )


def _choice(value: object, what: str, allowed: tuple[str, ...]) -> Any:
    if value not in allowed:
        raise ConfigError(f"{what} {value!r} is not known: use {', '.join(map(repr, allowed))}")
    return value


def _downgrade_target(mode: str, target: object) -> str | None:
    if mode == "downgrade":
        if not isinstance(target, str) or not target.strip():
            raise ConfigError("mode 'downgrade' needs downgrade_to = the cheaper model to call instead")
        return target.strip()
    if target is not None:
        raise ConfigError(f"downgrade_to is only used with mode 'downgrade' (this budget's mode is {mode!r})")
    return None


def _crossed_at(pct: Decimal, limit_nanousd: int) -> int:
    """The least whole spend with `spend * 100 >= pct * limit`."""
    numerator, denominator = pct.as_integer_ratio()
    return -((-numerator * limit_nanousd) // (100 * denominator))


def _thresholds(raw: object) -> tuple[Decimal, ...]:
    if isinstance(raw, str) or not isinstance(raw, Sequence):
        raise ConfigError(f"thresholds must be a list of percentages such as [50, 80, 100], got {raw!r}")
    out = set()
    for item in cast(Sequence[object], raw):
        text = str(item).strip().removesuffix("%") if isinstance(item, str) else item
        try:
            value = Decimal(str(text)) if not isinstance(text, bool) else Decimal("NaN")
        except InvalidOperation:
            value = Decimal("NaN")
        if not value.is_finite() or not 0 < value <= 1000:
            raise ConfigError(f"threshold {item!r} must be a percentage of the limit in (0, 1000], e.g. 80")
        out.add(value)
    return tuple(sorted(out))
