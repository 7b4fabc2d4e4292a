"""CSV and XLSX downloads of a report table: the same cells the page shows."""

import csv
import io
from decimal import Decimal

from openpyxl import Workbook
from openpyxl.utils import get_column_letter

from reporting.reports.periods import Period
from reporting.reports.tables import Cell, Table


def cell_text(value: Cell) -> str:
    """A cell as the page and the CSV write it: amounts with two decimals, empty for none."""
    return "" if value is None else str(value)


def _heading(table: Table, period: Period, organisation: str) -> list[str]:
    return [
        f"{table.title}, {period.label} ({period.zone.key})",
        organisation,
        "Spend in each campaign's currency; amounts of different currencies are not added.",
    ]


def table_csv(table: Table) -> bytes:
    """The table as CSV (UTF-8 with a byte-order mark, so spreadsheet apps read accents)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(table.columns)
    for row in table.rows:
        writer.writerow([cell_text(c) for c in row])
    return ("\ufeff" + out.getvalue()).encode()


def table_xlsx(table: Table, period: Period, organisation: str) -> bytes:
    """The table as a one-sheet workbook: numbers as numbers, amounts with two decimals."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None  # noqa: S101 - a new workbook has one sheet
    sheet.title = table.title[:31]
    sheet.append(table.columns)
    for row in table.rows:
        sheet.append(row)
    for row_cells in sheet.iter_rows(min_row=2):
        for cell in row_cells:
            if isinstance(cell.value, Decimal):
                cell.number_format = "0.00"
    for i, name in enumerate(table.columns, start=1):
        sheet.column_dimensions[get_column_letter(i)].width = max(12, len(name) + 2)
    notes = book.create_sheet("About")
    for line in _heading(table, period, organisation):
        notes.append([line])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
