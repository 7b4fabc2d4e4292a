"""Adding a batch's counts to rollup rows in one statement per table: INSERT ... ON CONFLICT
(the row's unique key) DO UPDATE SET column = column + the batch's, instead of a get_or_create
and an UPDATE per row (Postgres and SQLite alike).

Rows are written in the order given (callers pass them in `lock_order`), so concurrent
ingestions of different partitions lock shared rows in the same order.
"""

from collections.abc import Mapping, Sequence
from typing import Any

from django.db import connection

# Rows per statement: well under SQLite's limit of bound parameters.
CHUNK = 300


def add_rows(
    model: Any,
    rows: Sequence[tuple[Mapping[str, Any], Mapping[str, Any], Mapping[str, Any]]],
) -> None:
    """Add each (key, set on insert, amounts) to `model`'s row with that key (its unique
    constraint's fields), creating it. Every row gives the same fields."""
    if not rows:
        return
    key, owner, amounts = rows[0]
    columns = [*key, *owner, *amounts]
    table = connection.ops.quote_name(model._meta.db_table)
    quote = connection.ops.quote_name
    names = ", ".join(quote(model._meta.get_field(c).column) for c in columns)
    conflict = ", ".join(quote(model._meta.get_field(c).column) for c in key)
    updates = ", ".join(
        f"{quote(c)} = {table}.{quote(c)} + excluded.{quote(c)}"
        for c in (model._meta.get_field(a).column for a in amounts)
    )
    one = "(" + ", ".join(["%s"] * len(columns)) + ")"
    fields = [model._meta.get_field(c) for c in columns]
    with connection.cursor() as cursor:
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start : start + CHUNK]
            params: list[Any] = []
            for k, o, a in chunk:
                values = [*k.values(), *o.values(), *a.values()]
                params += [
                    f.get_db_prep_value(v, connection) for f, v in zip(fields, values, strict=True)
                ]
            cursor.execute(
                f"INSERT INTO {table} ({names}) VALUES {', '.join([one] * len(chunk))} "  # noqa: S608
                f"ON CONFLICT ({conflict}) DO UPDATE SET {updates}",
                params,
            )
