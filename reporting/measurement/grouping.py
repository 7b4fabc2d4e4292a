"""The measurement report's one grouped query: a period's hourly, daily and monthly rows
summed per group, currency and kind of demand in SQL, in one statement (`grouped_rows`).

Amounts in other currencies than the report's are converted in SQL, each row's spend times
the factor of its UTC day, by a join on a table of the period's (currency, day, factor)
passed as one JSON parameter: a hash join, rather than a JSON lookup per row. Counts come
back as integers (summed in a bigint, migration 0018) and amounts as exact decimals, so a
grouping of 10,000 line items is one statement returning some 12,000 rows of plain values
(a group's rows per tier add up in the caller), with no per-value conversion by the ORM.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import QuerySet

COUNTS = (
    "requests", "bids", "wins", "impressions", "clicks", "errors", "viewable", "measurable",
    "video_start", "first_quartile", "midpoint", "third_quartile", "complete", "skip", "mute",
    "pause",
)  # fmt: skip
# Counted in the rollup, not shown in the report: left out of its sums.
UNREPORTED = ("skip", "mute", "pause")
REPORTED = tuple(name for name in COUNTS if name not in UNREPORTED)

# Where each value sits in a row of `grouped_rows`.
TIER, KEY, CURRENCY, EXTERNAL = 0, 1, 2, 3
FIRST_COUNT = 4
SPEND = FIRST_COUNT + len(REPORTED)  # in the row's currency
CONVERTED = SPEND + 1  # in the report currency, where every row had a factor
UNCONVERTED = SPEND + 2  # the spend of rows with no factor
SOURCE_MIN, SOURCE_MAX = SPEND + 3, SPEND + 4  # the rate sources used (`FxHistory.sources`)
AT = {name: FIRST_COUNT + i for i, name in enumerate(REPORTED)}
# The time field of each tier, by its number in the rows.
TIME_FIELDS = ("hour", "day", "month")


# What a tier's rows give the report: everything, only the counts (and the amounts in the
# report currency), or only the amounts (the days of months in other currencies).
ALL, COUNTS_ONLY, SPEND_ONLY = "all", "counts", "spend"


@dataclass(frozen=True)
class Rates:
    """What one unit of each currency is in the report currency on each UTC day (a
    currency with no rate on a day has no entry), and the rate source of each day."""

    factors: list[tuple[str, date, str]]
    sources: dict[str, int]


def grouped_rows(
    tiers: Sequence[tuple[QuerySet[Any], str, str]],
    column: str | None,
    currency: str,
    rates: Rates | None,
) -> list[tuple[Any, ...]]:
    """The rows of `tiers` (each a scoped rollup, its time field and what it gives) summed
    per `column` (None: per tier and time, for a report over time), currency and kind of
    demand (`EXTERNAL`: line item 0, whose wins are buyers'), one row per tier and group
    (a group's rows add up); with `rates`, converted and unconverted spend and the rate
    sources used too (else None there)."""
    parts, params = [], []
    for qs, time_field, reads in tiers:
        if qs.query.is_empty():
            continue
        sql, part_params = _part(qs, time_field, reads, column, currency, rates is not None)
        parts.append(sql)
        params += part_params
    if not parts:
        return []
    head = ""
    if rates is not None:
        head = f"WITH f AS ({_factor_table()}), s AS ({_source_table()}) "
        params = [
            json.dumps([{"c": c, "d": d.isoformat(), "x": x} for c, d, x in rates.factors]),
            json.dumps([{"d": d, "n": n} for d, n in rates.sources.items()]),
            *params,
        ]
    # Each part is grouped on its own table, where the planner knows how many groups to
    # expect (and hashes them); a key's parts add up in Python (a few rows per key at most).
    sql = head + " UNION ALL ".join(parts)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if connection.vendor == "postgresql":
        return rows
    return [_sqlite_values(r, column is None) for r in rows]


def _part(
    qs: QuerySet[Any], time_field: str, reads: str, column: str | None, currency: str,
    convert: bool,
) -> tuple[str, list[Any]]:  # fmt: skip
    """One tier's rows grouped, its columns under the same names in every part (0 for the
    counts its table does not keep, NULL for what it does not give)."""
    fields = {f.name for f in qs.model._meta.get_fields()}
    key = column or time_field
    # A time field grouped by is read once (a subquery's names must be unique).
    names = dict.fromkeys((key, time_field, "currency", "line_item_id", "spend"))
    names.update(dict.fromkeys(n for n in REPORTED if n in fields))
    inner, inner_params = qs.order_by().values(*names).query.sql_with_params()
    total = _sum_bigint()
    counts = ", ".join(
        f'{total}(u."{n}") AS c_{n}' if n in fields and reads != SPEND_ONLY else f"0 AS c_{n}"
        for n in REPORTED
    )
    params: list[Any] = []
    if reads == COUNTS_ONLY:  # a month has no single rate: only its own-currency amounts
        spend = 'SUM(CASE WHEN u."currency" = %s THEN u."spend" END)'
        params.append(currency)
    else:
        spend = 'SUM(u."spend")'
    joins = ""
    if convert and reads != COUNTS_ONLY:
        day = _utc_day(time_field)
        # A row in the report currency has no factor: the caller reads its `SPEND`.
        amounts = (
            'SUM(u."spend" * f.x) AS converted, '
            'SUM(CASE WHEN f.x IS NULL THEN u."spend" END) AS unconverted, '
            "MIN(s.n) AS source_min, MAX(s.n) AS source_max"
        )
        joins = f' LEFT JOIN f ON f.c = u."currency" AND f.d = {day} LEFT JOIN s ON s.d = {day}'
    else:
        amounts = (
            "CAST(NULL AS numeric) AS converted, CAST(NULL AS numeric) AS unconverted, "
            "CAST(NULL AS integer) AS source_min, CAST(NULL AS integer) AS source_max"
        )
    tier = TIME_FIELDS.index(time_field) if column is None else 0  # apart over time
    sql = (
        f'SELECT {tier} AS t, u."{key}" AS k, u."currency" AS cur, '  # noqa: S608
        f'u."line_item_id" = 0 AS ext, {counts}, {spend} AS spend, '
        f"{amounts} "
        f"FROM ({inner}) u{joins} GROUP BY 1, 2, 3, 4"
    )
    return sql, [*params, *inner_params]


def _sum_bigint() -> str:
    """A sum of counts that stays an integer: on Postgres the aggregate of migration 0017
    (SUM(bigint) keeps a 128-bit state per group and returns a numeric, which cost most of
    a year's grouping)."""
    return "report_sum_bigint" if connection.vendor == "postgresql" else "SUM"


def _utc_day(time_field: str) -> str:
    """The midnight (UTC) starting a row's UTC day, as the rate tables key it."""
    if connection.vendor != "postgresql":
        return f'date(u."{time_field}")'  # SQLite (the demo) stores UTC times as text
    if time_field == "hour":
        return f"date_trunc('day', u.\"{time_field}\", 'UTC')"
    return f'u."{time_field}"'  # a daily row's time is its midnight


def _factor_table() -> str:
    if connection.vendor == "postgresql":
        return (
            "SELECT c, (d::timestamp AT TIME ZONE 'UTC') AS d, x "
            "FROM jsonb_to_recordset(%s::jsonb) AS t(c text, d date, x numeric)"
        )
    return (
        "SELECT json_extract(value, '$.c') AS c, json_extract(value, '$.d') AS d, "
        "json_extract(value, '$.x') AS x FROM json_each(%s)"
    )


def _source_table() -> str:
    if connection.vendor == "postgresql":
        return (
            "SELECT (d::timestamp AT TIME ZONE 'UTC') AS d, n "
            "FROM jsonb_to_recordset(%s::jsonb) AS t(d date, n int)"
        )
    return (
        "SELECT json_extract(value, '$.d') AS d, json_extract(value, '$.n') AS n FROM json_each(%s)"
    )


def _sqlite_values(row: tuple[Any, ...], over_time: bool) -> tuple[Any, ...]:
    """SQLite's values as Postgres gives them: times aware, amounts Decimal (the demo)."""
    out = list(row)
    if over_time:  # text, or a naive datetime where the column's type carried through
        at = out[KEY]
        at = datetime.fromisoformat(at) if isinstance(at, str) else at
        out[KEY] = at.replace(tzinfo=UTC) if at.tzinfo is None else at
    for i in (SPEND, CONVERTED, UNCONVERTED):
        if out[i] is not None and not isinstance(out[i], Decimal):
            out[i] = Decimal(str(out[i]))
    out[EXTERNAL] = bool(out[EXTERNAL])
    return tuple(out)
