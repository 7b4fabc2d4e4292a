"""Report cells as the page shows them: the same text the CSV download writes."""

from decimal import Decimal

from django import template

from reporting.reports.export import cell_text
from reporting.reports.tables import Cell

register = template.Library()


@register.filter
def cell(value: Cell) -> str:
    text = cell_text(value)
    return text or "-"


@register.filter
def change(value: Decimal | None) -> str:
    """A change in percent with its sign; "-" when there was nothing before to compare."""
    if value is None:
        return "-"
    return f"{value:+} %"


@register.filter
def index(values: list[str], i: int) -> str:
    """The i-th item of a list (a table row's link)."""
    return values[i]
