"""Exact arithmetic for the planner: Decimal money, Fraction ratios, rounding only for display.

Every amount of money is a `Decimal` computed in `MONEY`, a context that traps `Inexact`: a
sum or product is exact or an error, never silently rounded. Ratios (payback months, break-even
volumes, ROI) are divisions, which are rarely finite decimals, so they are kept as `Fraction`
and rounded half-even only when shown, with the number of places stated next to them.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal, DivisionByZero, Inexact, InvalidOperation, Overflow
from fractions import Fraction

__all__ = [
    "MONEY",
    "MONEY_DISPLAY",
    "ZERO",
    "add",
    "fmt_decimal",
    "fmt_money",
    "mul",
    "per_mtok",
    "ratio_json",
    "round_fraction",
    "total",
]

#: The decimal context of every money operation in costlens.roi (exact or raise).
MONEY = Context(
    prec=80, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Overflow, Inexact]
)
#: Rounding for display may be inexact by design; it never feeds back into a computation.
MONEY_DISPLAY = Context(prec=80, rounding=ROUND_HALF_EVEN)
ZERO = Decimal(0)
_MILLION = Decimal(1_000_000)


def mul(a: Decimal | int, b: Decimal | int) -> Decimal:
    """a × b, exactly."""
    return MONEY.multiply(Decimal(a), Decimal(b))


def add(a: Decimal | int, b: Decimal | int) -> Decimal:
    """a + b, exactly."""
    return MONEY.add(Decimal(a), Decimal(b))


def total(values: list[Decimal] | tuple[Decimal, ...]) -> Decimal:
    """The exact sum of amounts (0 for none)."""
    out = ZERO
    for value in values:
        out = MONEY.add(out, value)
    return out


def per_mtok(tokens: Decimal | int, usd_per_million: Decimal) -> Decimal:
    """The cost of `tokens` at a price per 1M tokens, exactly (a shift of six places, no rounding)."""
    return MONEY.scaleb(mul(tokens, usd_per_million), -6)


def round_fraction(value: Fraction, places: int) -> Decimal:
    """A fraction as a Decimal rounded half-even to `places` decimals (display only)."""
    scaled = value * 10**places
    return Decimal(round(scaled)).scaleb(-places)


def ratio_json(value: Fraction | None, places: int) -> dict[str, str] | None:
    """`{"exact": "100000/3", "rounded": "33333.33"}`: the exact fraction and its displayed rounding."""
    if value is None:
        return None
    exact = str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
    return {"exact": exact, "rounded": format(round_fraction(value, places), "f")}


def fmt_decimal(value: Decimal | Fraction | int, places: int | None = None) -> str:
    """Thousands separators; `places` rounds half-even (None: Decimal as is, Fraction to 2 places)."""
    if isinstance(value, Fraction):
        value = round_fraction(value, 2 if places is None else places)
        if places is None:
            value = value.normalize(MONEY_DISPLAY)
    elif places is not None:
        value = Decimal(value).quantize(
            Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN, context=MONEY_DISPLAY
        )
    text = f"{value:,f}" if isinstance(value, Decimal) else f"{value:,}"
    if places is None and "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def fmt_money(value: Decimal | Fraction, places: int = 2) -> str:
    """`$1,422.00`, `-$6.00`: money for people, rounded half-even to `places` (cents by default)."""
    text = fmt_decimal(value, places)
    return f"-${text[1:]}" if text.startswith("-") else f"${text}"
