"""Reading the report page and its downloads the way a person would: by labelled cells."""

import csv
import io
import re
from typing import Any

from django.test import Client
from openpyxl import load_workbook


def _block(page: str, currency: str) -> str:
    after = page.split(f'data-kpis="{currency}"', 1)[1]
    return after.split("data-kpis=", 1)[0].split("<h2", 1)[0]


def kpis(page: str, currency: str) -> dict[str, str]:
    """The headline numbers of one currency's block: metric key to shown text."""
    block = _block(page, currency)
    return dict(re.findall(r'data-kpi="(\w+)">([^<]*)<', block))


def previous(page: str, currency: str) -> dict[str, str]:
    block = _block(page, currency)
    return dict(re.findall(r'data-previous="(\w+)">([^<]*)<', block))


def changes(page: str, currency: str) -> dict[str, str]:
    block = _block(page, currency)
    return dict(re.findall(r'data-change="(\w+)">([^<]*)<', block))


def page_table(page: str, key: str) -> list[list[str]]:
    """A table's header and rows as the page shows them ("-" for an empty cell)."""
    body = page.split(f'data-table="{key}"', 1)[1].split("</table>", 1)[0]
    header = re.findall(r"<th[^>]*>([^<]*)</th>", body)
    rows = [
        [re.sub(r"<[^>]+>", "", cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", tr)]
        for tr in re.findall(r"<tr>(.*?)</tr>", body.split("<tbody>", 1)[1], re.S)
    ]
    return [header, *[r for r in rows if len(r) == len(header)]]


def csv_table(client: Client, key: str, query: str = "") -> list[list[str]]:
    response = client.get(f"/reports/download/{key}.csv?{query}")
    assert response.status_code == 200, response.content
    text = response.content.decode("utf-8-sig")
    return [[c or "-" for c in row] for row in csv.reader(io.StringIO(text))]


def xlsx_table(client: Client, key: str, query: str = "") -> list[list[Any]]:
    response = client.get(f"/reports/download/{key}.xlsx?{query}")
    assert response.status_code == 200, response.content
    sheet = load_workbook(io.BytesIO(response.content)).worksheets[0]
    return [[(c.value, c.number_format) for c in row] for row in sheet.iter_rows()]


def as_text(rows: list[list[Any]]) -> list[list[str]]:
    """XLSX cells as a spreadsheet shows them: with their number format (0.00 amounts)."""
    out = []
    for row in rows:
        cells = []
        for value, number_format in row:
            if value is None:
                cells.append("-")
            elif number_format == "0.00":
                cells.append(f"{value:.2f}")
            else:
                cells.append(str(value))
        out.append(cells)
    return out
