"""Money on HQ's commission screens: integer fen shown as yuan."""

from django import template

from o2o.money import format_yuan

register = template.Library()


@register.filter
def yuan(fen: int | None) -> str:
    """12345 → "¥123.45"."""
    return format_yuan(fen or 0)
