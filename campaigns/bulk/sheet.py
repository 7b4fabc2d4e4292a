"""Reading and writing the CSV itself: encoding, limits, the header, formula escaping."""

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings

from campaigns.bulk import columns as cols

# Spreadsheets run a cell starting with one of these as a formula (CSV injection): exports
# prefix such cells with a quote, and the reader takes that quote off again.
FORMULA_STARTS = ("=", "+", "-", "@")
ESCAPE = "'"


def max_bytes() -> int:
    return int(getattr(settings, "BULKSHEET_MAX_BYTES", 10 * 1024 * 1024))


def max_rows() -> int:
    return int(getattr(settings, "BULKSHEET_MAX_ROWS", 50_000))


@dataclass(frozen=True)
class RowError:
    row: int | None  # the spreadsheet row: 1 is the header; None is the file as a whole
    column: str
    message: str

    def as_dict(self) -> dict[str, int | str | None]:
        return {"row": self.row, "column": self.column, "message": self.message}


class SheetError(Exception):
    """The file cannot be read as a bulksheet at all."""

    def __init__(self, errors: list[RowError]) -> None:
        super().__init__("; ".join(e.message for e in errors))
        self.errors = errors

    @classmethod
    def of(cls, message: str, row: int | None = None) -> "SheetError":
        return cls([RowError(row, "", message)])


@dataclass
class Row:
    number: int
    cells: dict[str, str]  # known column -> cell text, unescaped and trimmed

    def get(self, column: str) -> str:
        return self.cells.get(column, "")


@dataclass
class Sheet:
    header: list[str]  # as written in the file
    columns: list[str | None]  # the known column at each position; None is ignored
    rows: list[Row] = field(default_factory=list)
    raw: list[list[str]] = field(default_factory=list)  # every data row as read, for results
    errors: list[RowError] = field(default_factory=list)  # rows that do not fit the header

    def has(self, column: str) -> bool:
        return column in self.columns


def escape(value: str) -> str:
    return ESCAPE + value if value.startswith(FORMULA_STARTS) else value


def unescape(value: str) -> str:
    if value.startswith(ESCAPE) and value[1:2] in FORMULA_STARTS:
        return value[1:]
    return value


def decode(data: bytes) -> str:
    """The file's text: UTF-8, with or without a byte order mark, within the size limit."""
    if len(data) > max_bytes():
        raise too_large()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SheetError.of(
            f"The file is not UTF-8 (byte {exc.start + 1} cannot be read): save it as CSV UTF-8."
        ) from exc
    if not text.strip():
        raise SheetError.of("The file is empty.")
    if "\x00" in text:
        # A binary file (a spreadsheet saved as .xlsx, say); Postgres cannot store NUL either.
        raise SheetError.of("The file holds NUL bytes: it is not a CSV text file.")
    return text


def too_large() -> SheetError:
    return SheetError.of(f"The file is larger than the limit of {max_bytes():,} bytes. Split it.")


def _header(cells: list[str]) -> tuple[list[str | None], list[RowError]]:
    errors: list[RowError] = []
    columns: list[str | None] = []
    for cell in cells:
        name = unescape(cell.strip())
        known = cols.KNOWN.get(name.lower()) if name else None
        if name and known is None:
            errors.append(RowError(1, name, f'Unknown column "{name}".'))
        elif known in columns:
            errors.append(RowError(1, name, f'The column "{known}" appears twice.'))
        columns.append(None if known in cols.IGNORED else known)
    missing = [c for c in cols.REQUIRED if c not in columns]
    if missing and len(cells) == 1 and ";" in cells[0]:
        errors.append(RowError(1, "", "Columns are separated by ; here: save as CSV with commas."))
    elif missing:
        errors.append(RowError(1, ", ".join(missing), f"Missing columns: {', '.join(missing)}."))
    return columns, errors


def read(text: str) -> Sheet:
    """Rows of known columns; raises SheetError for a header or a size it cannot use."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
        columns, errors = _header(header)
        if errors:
            raise SheetError(errors)
        sheet = Sheet(header=[h.strip() for h in header], columns=columns)
        limit = max_rows()
        for number, cells in enumerate(reader, start=2):
            if not any(cell.strip() for cell in cells):
                continue
            if len(sheet.rows) == limit:
                raise SheetError.of(f"The file has more than {limit:,} rows. Split it.", number)
            sheet.errors.extend(_layout_errors(number, cells, sheet.header))
            sheet.raw.append(cells)
            sheet.rows.append(
                Row(
                    number,
                    {
                        name: unescape(cell.strip())
                        for name, cell in zip(columns, cells, strict=False)
                        if name is not None and cell
                    },
                )
            )
    except StopIteration:
        raise SheetError.of("The file is empty.") from None
    except csv.Error as exc:
        raise SheetError.of(f"The CSV is malformed: {exc}.", reader.line_num) from exc
    return sheet


def _layout_errors(number: int, cells: list[str], header: list[str]) -> list[RowError]:
    if any(cell.strip() for cell in cells[len(header) :]):
        message = f"The row has {len(cells)} cells; the header has {len(header)}."
        return [RowError(number, "", message)]
    return [
        RowError(number, "", f"Column {n} has a value but no name in the header.")
        for n, (name, cell) in enumerate(zip(header, cells, strict=False), start=1)
        if not name and cell.strip()
    ]


def write(header: list[str], rows: Iterable[list[str]]) -> str:
    """CSV text with formula-looking cells escaped."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([escape(h) for h in header])
    writer.writerows([escape(cell) for cell in row] for row in rows)
    return out.getvalue()
