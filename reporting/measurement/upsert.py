"""Adding a batch's counts to rollup rows in one statement per table: INSERT ... ON CONFLICT
(the row's unique key) DO UPDATE SET column = column + the batch's, instead of a get_or_create
and an UPDATE per row.

On Postgres the rows travel as one array per column (`INSERT ... SELECT FROM unnest(...)`):
one statement per table whatever the batch's size, one parameter per column instead of one
per value, each an array literal built with one join (no Django field preparation nor
psycopg adaptation per value: those were most of a batch's time). Elsewhere (SQLite, the
embedded default) as multi-row VALUES, as many rows a statement as its parameter limit
allows.

Rows are written in the order given (callers pass them in `lock_order`; on Postgres the
order is explicit, WITH ORDINALITY), so concurrent ingestions of different partitions lock
shared rows in the same order.
"""

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Field

# Rows per statement off Postgres where the backend states no limit of bound parameters.
CHUNK = 300


def _rows_per_statement(columns: int) -> int:
    # As many as SQLite's limit of bound parameters allows (32,766 since 3.32).
    limit = connection.features.max_query_params
    return max(1, limit // columns) if limit else CHUNK


def merged(rows: Iterable[Sequence[Any]], width: int, amounts: int) -> list[Sequence[Any]]:
    """The rows (their first `width` values the key, their last `amounts` values amounts)
    with those of one key summed into the first of them: one statement may not touch a row
    twice (two late hours of one day both add to its daily row)."""
    by_key: dict[tuple[Any, ...], Sequence[Any]] = {}
    for row in rows:
        key = tuple(row[:width])
        seen = by_key.get(key)
        if seen is None:
            by_key[key] = row
            continue
        total = list(seen)
        for i in range(len(row) - amounts, len(row)):
            total[i] += row[i]
        by_key[key] = total
    return list(by_key.values())


def _array_type(field: "Field[Any, Any]") -> str:
    # Strings as text[]: a cast to varchar(n)[] would silently cut a value that is too long,
    # where the insert into the varchar(n) column refuses it (as the ORM's insert did).
    kind = field.db_type(connection) or "text"
    return "text" if kind.startswith("varchar") else kind


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def array_literal(values: Sequence[Any]) -> str:
    """A Postgres array literal ('{1,2,3}') of one column's values (ints, Decimals, bools,
    aware datetimes or strings; never None): built with one join, where psycopg's adaptation
    of a list quotes element by element (a quarter of a batch's time with 50,000 values)."""
    first = values[0]
    if isinstance(first, bool):
        return "{" + ",".join("t" if v else "f" for v in values) + "}"
    if isinstance(first, int | Decimal):
        return "{" + ",".join(map(str, values)) + "}"
    if isinstance(first, datetime):
        if first.tzinfo is None:
            raise ValueError("naive datetime in a rollup row")
        return "{" + ",".join(f'"{v.isoformat()}"' for v in values) + "}"
    return "{" + ",".join(map(_quoted, values)) + "}"


def add_rows(
    model: Any,
    key: Sequence[str],
    owner: Sequence[str],
    amounts: Sequence[str],
    rows: Iterable[Sequence[Any]],
) -> None:
    """Add each row (values of the `key` fields, a unique constraint's; of the `owner` ones,
    set on insert; of the `amounts`, added) to `model`'s row with that key, creating it.
    Every column without a database default must be given (Django's `default=` is not one)."""
    rows = merged(rows, len(key), len(amounts))
    if not rows:
        return
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    fields = [model._meta.get_field(c) for c in (*key, *owner, *amounts)]
    if len(rows[0]) != len(fields):
        raise ValueError(f"{len(rows[0])} values a row for {len(fields)} columns")
    conflict = ", ".join(quote(model._meta.get_field(c).column) for c in key)
    updates = ", ".join(
        f"{quote(c)} = {table}.{quote(c)} + excluded.{quote(c)}"
        for c in (model._meta.get_field(a).column for a in amounts)
    )
    _insert(table, fields, rows, f"ON CONFLICT ({conflict}) DO UPDATE SET {updates}")


def _insert(
    table: str, fields: Sequence[Any], rows: Sequence[Sequence[Any]], tail: str
) -> list[tuple[Any, ...]]:
    """INSERT the rows into the quoted `table`, the statement ending with `tail` (its ON
    CONFLICT clause, and RETURNING); the rows returned. Postgres: one statement of one array
    per column; elsewhere as many rows a statement as the parameter limit allows."""
    names = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    returned: list[tuple[Any, ...]] = []
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"INSERT INTO {table} ({names}) {_unnest(fields)} {tail}",
                [array_literal(column) for column in zip(*rows, strict=True)],
            )
            return [tuple(r) for r in cursor.fetchall()] if cursor.description else []
        one = "(" + ", ".join(["%s"] * len(fields)) + ")"
        step = _rows_per_statement(len(fields))
        for start in range(0, len(rows), step):
            chunk = rows[start : start + step]
            cursor.execute(
                f"INSERT INTO {table} ({names}) VALUES {', '.join([one] * len(chunk))} {tail}",  # noqa: S608
                _prepared(fields, chunk),
            )
            if cursor.description:
                returned.extend(tuple(r) for r in cursor.fetchall())
    return returned


def _unnest(fields: Sequence["Field[Any, Any]"]) -> str:
    """SELECT the rows from one array per column, in the order given."""
    arrays = ", ".join(f"%s::{_array_type(f)}[]" for f in fields)
    aliases = ", ".join(f"c{i}" for i in range(len(fields)))
    return (
        f"SELECT {aliases} FROM unnest({arrays}) "  # noqa: S608 - column names and types
        f"WITH ORDINALITY AS u({aliases}, n) ORDER BY n"
    )


def _prepared(fields: Sequence["Field[Any, Any]"], rows: Sequence[Sequence[Any]]) -> list[Any]:
    return [
        f.get_db_prep_value(v, connection) for row in rows for f, v in zip(fields, row, strict=True)
    ]


def insert_new(
    model: Any, key: Sequence[str], columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> set[tuple[Any, ...]]:
    """Insert the rows (values of `columns`, which start with the `key` fields of a unique
    constraint) whose key is not in `model`'s table yet, and return the keys of those
    inserted: "which are new" and "record them" in one statement (a row already there is
    left alone)."""
    if not rows:
        return set()
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    fields = [model._meta.get_field(c) for c in columns]
    conflict = ", ".join(quote(model._meta.get_field(c).column) for c in key)
    return set(
        _insert(table, fields, rows, f"ON CONFLICT ({conflict}) DO NOTHING RETURNING {conflict}")
    )
