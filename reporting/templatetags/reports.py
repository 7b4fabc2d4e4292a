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
