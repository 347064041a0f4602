"""Number formatting for observability pages (the same rules as static/js/format.js)."""

from __future__ import annotations

from decimal import Decimal

from django import template

register = template.Library()


@register.filter
def ms(value: float | None) -> str:
    if value is None:
        return "–"
    v = float(value)
    if v >= 10_000:
        return f"{v / 1000:.1f} s"
    if v >= 1000:
        return f"{v / 1000:.2f} s"
    if v >= 10:
        return f"{v:.0f} ms"
    return f"{v:.1f} ms" if v >= 1 else f"{v:.2f} ms"


@register.filter
def usd(value: Decimal | float | None) -> str:
    if value is None:
        return "–"
    v = float(value)
    if v == 0:
        return "$0"
    if abs(v) >= 100:
        return f"${v:,.0f}"
    if abs(v) >= 1:
        return f"${v:.2f}"
    if abs(v) >= 0.01:
        return f"${v:.3f}"
    if abs(v) < 0.000001:
        return "<$0.000001"
    return "$" + f"{v:.6f}".rstrip("0")
