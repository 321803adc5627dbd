"""The dashboard's rendering: the Jinja2 environment (autoescape on), money and number filters,
chart payloads for plotly.js, and the friendly error page.

Money stays `Decimal` until it is text: each amount is shown with 2 to 6 decimals (2 from $1 up, up to
4 from a cent, up to 6 below), rounded half-even, and carries its exact value in a `title` attribute
(and, for tests and scripts, in `data-usd`). Charts get floats: they are only drawn.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from functools import cache
from typing import Any

from markupsafe import Markup

__all__ = ["chart_json", "environment", "exact_usd", "money_text", "render"]

_CENT = Decimal("0.01")
_ONE = Decimal(1)


def _places(value: Decimal) -> int:
    """Decimals shown: as many as the value needs, at least 2, at most 2 ($1 up), 4 (a cent up) or 6."""
    exponent = value.normalize().as_tuple().exponent
    needed = max(0, -exponent) if isinstance(exponent, int) else 0
    size = abs(value)
    cap = 2 if size >= _ONE or size == 0 else 4 if size >= _CENT else 6
    return min(max(needed, 2), cap)


def money_text(value: Decimal | None, *, signed: bool = False) -> str:
    """`$1,234.50`, `$0.0123`, `$0.000123`; `+`/`−` in front when `signed`; `—` for None."""
    if value is None:
        return "—"
    places = _places(value)
    shown = value.quantize(Decimal(1).scaleb(-places), ROUND_HALF_EVEN)
    sign = "−" if shown < 0 else ("+" if signed and shown > 0 else "")
    return f"{sign}${abs(shown):,.{places}f}"


def exact_usd(value: Decimal | None) -> str:
    """The exact amount as plain decimal text (`0.001234500`), as the library returned it."""
    return "" if value is None else format(value, "f")


def _money(value: Decimal | None, signed: bool = False, missing: str = "—") -> Markup:
    """A money cell: rounded text, the exact value in `title` and `data-usd`."""
    if value is None:
        return Markup('<span class="money missing">{}</span>').format(missing)
    exact = format(value.normalize(), "f")
    return Markup('<span class="money" title="{} exactly" data-usd="{}">{}</span>').format(
        f"${exact}", exact_usd(value), money_text(value, signed=signed)
    )


def _count(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float | Decimal):
        return f"{value:,.1f}"
    return str(value)


def _percent(value: object, places: int = 1, signed: bool = False) -> str:
    if value is None:
        return "—"
    number = Decimal(str(value)) * 100
    text = f"{abs(number):.{places}f}%"
    if number < 0:
        return "−" + text
    return ("+" if signed and number > 0 else "") + text


def _when(value: object, seconds: bool = False) -> str:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        return "—"
    return value.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def _key(value: object) -> str:
    return "(none)" if value is None else str(value)


def chart_json(figure: Mapping[str, Any]) -> Markup:
    """A plotly figure (`data`, `layout`) as JSON safe inside `<script type="application/json">`."""
    text = json.dumps(figure, separators=(",", ":"), default=str)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)


@cache
def environment() -> Any:
    """The Jinja2 environment over the package's templates (autoescape on for every template)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(
        loader=PackageLoader("costlens.server", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        money=_money,
        money_text=money_text,
        count=_count,
        percent=_percent,
        when=_when,
        key=_key,
        chart=chart_json,
    )
    return env


def render(name: str, status_code: int = 200, **context: Any) -> Any:
    """An HTML response of template `name`."""
    from fastapi.responses import HTMLResponse

    html = environment().get_template(name).render(**context)
    return HTMLResponse(html, status_code=status_code)


def problem(page: str, title: str, message: str, status_code: int = 422, **links: str) -> Any:
    """The friendly page for a request the dashboard cannot answer (bad query parameter, unknown run)."""
    return render(
        "problem.html",
        status_code=status_code,
        section=page,
        generated=datetime.now(UTC),
        title=title,
        message=message,
        links=links,
    )
