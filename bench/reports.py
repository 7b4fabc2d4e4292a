"""How fast the measurement report answers over a year of rollups for 10,000 line items.

    DATABASE_URL=postgres://... .venv/bin/python bench/reports.py [--line-items 10000]
        [--days 365] [--flight-days 30] [--placements 2] [--hourly-days 35] [--repeat 3]

Generates the rows in Postgres itself (INSERT ... SELECT over generate_series, not a Python
loop) as the roll-up job leaves them: each line item runs one flight of `--flight-days`
consecutive days somewhere in the year on `--placements` placements; every closed day is a
`DemandDaily` row per line item and placement (with its `RolledDay` mark), every month
before this one is summed into `DemandMonthly` rows (with its `RolledMonth` mark), and the
last `--hourly-days` days are also kept as `DemandHourly` rows, one per hour, today's
included, whose counts and spend add up exactly to the day's row. `--no-months` leaves the
monthly tier out (the report then reads the days).
10 % of campaigns are in EUR and 5 % in GBP, with a reference-rate set per day, so the
report converts. Then it times the staff report over the whole year for each grouping (the
first run and the best of `--repeat`, the first page of rows labelled as the API does) and
prints the row counts and the answer times, beside a baseline measured in the same run: one
plain SUM over the year's daily rows (what the machine's load makes of a scan).
Bench rows use advertiser ids from 9,000,000, rate sets from a source named "bench" and
roll-up marks it adds; all are deleted before and after, nothing else is touched.
"""

import argparse
import os
import sys
import time as clock
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BENCH_ADV = 9_000_000
COUNT_COLUMNS = (
    "requests", "bids", "wins", "impressions", "clicks", "errors", "viewable", "measurable",
    "video_start", "first_quartile", "midpoint", "third_quartile", "complete", "skip", "mute",
    "pause",
)  # fmt: skip


def _count_values(seed: str) -> list[str]:
    """Plausible, deterministic counts from a row's seed expression, in COUNT_COLUMNS order."""
    imps = f"(100 + ({seed}) % 400)"
    values = {
        "requests": f"{imps} * 3", "bids": "0", "wins": imps, "impressions": imps,
        "clicks": f"({imps} / 150)", "errors": f"(({seed}) % 3)", "viewable": f"({imps} * 6 / 10)",
        "measurable": f"({imps} * 9 / 10)", "video_start": f"({imps} / 4)",
        "first_quartile": f"({imps} / 5)", "midpoint": f"({imps} / 6)",
        "third_quartile": f"({imps} / 7)", "complete": f"({imps} / 8)", "skip": "0", "mute": "0",
        "pause": "0",
    }  # fmt: skip
    return [values[c] for c in COUNT_COLUMNS]


def _counts_sql(seed: str) -> str:
    return ", ".join(_count_values(seed))


def _hour_share(day_value: str, hour: str) -> str:
    """An hour's part of a day's count: the day's count split over its 24 hours, the
    remainder one each to the first hours, so the hours add up to the day exactly."""
    return f"(({day_value}) / 24 + CASE WHEN ({hour}) < ({day_value}) % 24 THEN 1 ELSE 0 END)"


TABLES = ("reporting_demandhourly", "reporting_demanddaily", "reporting_demandmonthly")


def _clean(cursor: Any, marks: list[date], month_marks: list[date]) -> None:
    for table in TABLES:
        cursor.execute(f"DELETE FROM {table} WHERE advertiser_id >= {BENCH_ADV}")  # noqa: S608
    cursor.execute("DELETE FROM campaigns_fxrateset WHERE source = 'bench'")
    if marks:
        cursor.execute("DELETE FROM reporting_rolledday WHERE day::date = ANY(%s)", [marks])
    if month_marks:
        cursor.execute(
            "DELETE FROM reporting_rolledmonth WHERE month::date = ANY(%s)", [month_marks]
        )


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def _months(first_day: date, today: date) -> list[date]:
    """The first days of the months from `first_day`'s to the one before `today`'s."""
    out, month = [], first_day.replace(day=1)
    while month < today.replace(day=1):
        out.append(month)
        month = (month + timedelta(days=32)).replace(day=1)
    return out


def _roll_months(cursor: Any, first_day: date, today: date) -> tuple[int, list[date]]:
    """The monthly rows and marks the roll-up job would have written; (rows, marks added)."""
    columns = ", ".join((*COUNT_COLUMNS, "spend"))
    sums = ", ".join(f"SUM({c})" for c in (*COUNT_COLUMNS, "spend"))
    cursor.execute(
        f"""
        INSERT INTO reporting_demandmonthly (month, placement_id, line_item_id, buyer_id,
            currency, door, campaign_id, advertiser_id, {columns})
        SELECT date_trunc('month', day AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', placement_id,
            line_item_id, buyer_id, currency, door, MAX(campaign_id), MAX(advertiser_id),
            {sums}
        FROM reporting_demanddaily
        WHERE advertiser_id >= {BENCH_ADV}
          AND day < TIMESTAMPTZ '{_midnight(today.replace(day=1)).isoformat()}'
        GROUP BY 1, placement_id, line_item_id, buyer_id, currency, door
        """  # noqa: S608
    )
    rows = cursor.rowcount
    cursor.execute("SELECT month::date FROM reporting_rolledmonth")
    existing = {row[0] for row in cursor.fetchall()}
    marks = [m for m in _months(first_day, today) if m not in existing]
    for month in marks:
        cursor.execute(
            "INSERT INTO reporting_rolledmonth (month, rolled_at) VALUES (%s, now())",
            [_midnight(month)],
        )
    return rows, marks


def generate(
    args: argparse.Namespace, now: datetime
) -> tuple[int, int, int, list[date], list[date]]:
    """Insert the rows; (daily, hourly, monthly rows, the day and month marks added)."""
    from django.db import connection, transaction

    first_day = (now - timedelta(days=args.days - 1)).date()
    today = now.date()
    kept_from = _midnight((now - timedelta(days=args.hourly_days)).date())
    columns = ", ".join(COUNT_COLUMNS)
    # Line items: id, campaign (100 per 10,000), advertiser (10 campaigns each), currency,
    # door, the first day of its flight.
    line_items = f"""
        SELECT 8000000 + n AS id, 8000000 + n / 100 AS cp, {BENCH_ADV} + n / 1000 AS adv,
               CASE WHEN (n / 100) % 20 < 2 THEN 'EUR' WHEN (n / 100) % 20 = 2 THEN 'GBP'
                    ELSE 'USD' END AS currency,
               (ARRAY['v1', 'openrtb', 'vast'])[1 + n % 3] AS door,
               DATE '{first_day}' + (n * 37) % GREATEST(1, {args.days} - {args.flight_days} + 1)
                   AS start_day
        FROM generate_series(0, {args.line_items - 1}) AS n
    """  # noqa: S608 - numbers from argparse
    spend = "(100 + ({s}) % 400) * 0.004"
    # The day's spend in nano-units, split over the hours as the counts are.
    nanos = "((100 + ({s}) % 400) * 4000000)"
    with connection.cursor() as cursor, transaction.atomic():
        _clean(cursor, [], [])
        cursor.execute(
            f"""
            INSERT INTO reporting_demanddaily (day, placement_id, line_item_id, buyer_id,
                currency, door, campaign_id, advertiser_id, {columns}, spend)
            SELECT (d.day::timestamp AT TIME ZONE 'UTC'), 7000000 + (li.id + p.k * 7) % 20,
                li.id, 0, li.currency, li.door, li.cp, li.adv,
                {_counts_sql("li.id + d.i + p.k")}, {spend.format(s="li.id + d.i + p.k")}
            FROM ({line_items}) AS li
            CROSS JOIN generate_series(0, {args.placements - 1}) AS p(k)
            CROSS JOIN LATERAL (
                SELECT li.start_day + i AS day, i
                FROM generate_series(0, {args.flight_days - 1}) i
            ) AS d
            WHERE d.day < DATE '{today}'
            """  # noqa: S608
        )
        daily = cursor.rowcount
        hour_counts = ", ".join(
            _hour_share(c, "h.i % 24") for c in _count_values("li.id + h.i / 24 + p.k")
        )
        cursor.execute(
            f"""
            INSERT INTO reporting_demandhourly (hour, placement_id, line_item_id, buyer_id,
                currency, door, campaign_id, advertiser_id, {columns}, spend)
            SELECT h.hour, 7000000 + (li.id + p.k * 7) % 20, li.id, 0, li.currency, li.door,
                li.cp, li.adv, {hour_counts},
                {_hour_share(nanos.format(s="li.id + h.i / 24 + p.k"), "h.i % 24")} / 1000000000.0
            FROM ({line_items}) AS li
            CROSS JOIN generate_series(0, {args.placements - 1}) AS p(k)
            CROSS JOIN LATERAL (
                SELECT (li.start_day::timestamp AT TIME ZONE 'UTC')
                    + i * INTERVAL '1 hour' AS hour, i
                FROM generate_series(0, {args.flight_days * 24 - 1}) i
            ) AS h
            WHERE h.hour >= TIMESTAMPTZ '{kept_from.isoformat()}'
              AND h.hour < TIMESTAMPTZ '{now.isoformat()}'
            """  # noqa: S608
        )
        hourly = cursor.rowcount
        cursor.execute(
            f"""
            INSERT INTO campaigns_fxrateset (rates_date, rates, source, fetched_at, checked_at)
            SELECT d::date, jsonb_build_object('USD', '1',
                   'EUR', (1.05 + (extract(doy FROM d)::int % 10) / 100.0)::text,
                   'GBP', (1.25 + (extract(doy FROM d)::int % 7) / 100.0)::text),
                   'bench', now(), now()
            FROM generate_series(DATE '{first_day}', DATE '{today}', INTERVAL '1 day') AS d
            """  # noqa: S608
        )
        cursor.execute("SELECT day::date FROM reporting_rolledday")
        existing = {row[0] for row in cursor.fetchall()}
        marks = [
            first_day + timedelta(days=i)
            for i in range((today - first_day).days)
            if first_day + timedelta(days=i) not in existing
        ]
        for day in marks:
            cursor.execute(
                "INSERT INTO reporting_rolledday (day, rolled_at) VALUES (%s, now())",
                [_midnight(day)],
            )
        monthly, month_marks = (0, []) if args.no_months else _roll_months(cursor, first_day, today)
    with connection.cursor() as cursor:
        # VACUUM too: a previous run's deleted rows would otherwise be scanned as well.
        for table in TABLES:
            cursor.execute(f"VACUUM ANALYZE {table}")
    return daily, hourly, monthly, marks, month_marks


def time_reports(args: argparse.Namespace, now: datetime) -> None:
    from zoneinfo import ZoneInfo

    from reporting.measurement.report import Source, label_rows, measure
    from reporting.models import DemandDaily, DemandHourly, DemandMonthly

    zone = ZoneInfo("UTC")
    start = datetime.combine(
        (now - timedelta(days=args.days - 1)).date(), datetime.min.time(), tzinfo=UTC
    )
    source = Source(
        DemandHourly.objects.all(), DemandDaily.objects.all(), DemandMonthly.objects.all()
    )
    print(f"\nstaff report, {start:%Y-%m-%d} to {now:%Y-%m-%d %H:%M} UTC, in USD")
    load = os.getloadavg()[0]
    print(f"(EUR and GBP converted at each day's rates; load average {load:.1f})")
    print(
        f"{'group by':<12}{'rows':>8}{'first s':>10}{'best s':>10}{'requests':>16}{'spend USD':>14}"
    )
    groups = ("campaign", "line_item", "placement", "publisher", "buyer", "door", "day", "hour")
    for group in groups:
        times = []
        for _ in range(args.repeat):
            started = clock.perf_counter()
            report = measure(source, group, "USD", start, now, zone, now, args.hourly_days)
            label_rows(group, report.rows[:100], zone)  # the API's first page
            times.append(clock.perf_counter() - started)
        totals = report.totals
        print(
            f"{group:<12}{len(report.rows):>8}{times[0]:>10.3f}{min(times):>10.3f}"
            f"{totals['requests']:>16,}{totals['spend']:>14}"
        )
    times = [_baseline(start, now) for _ in range(args.repeat)]
    print(
        f"{'baseline':<12}{'':>8}{times[0]:>10.3f}{min(times):>10.3f}  one SUM over the daily rows"
    )
    print(f"load average after: {os.getloadavg()[0]:.1f}")


def _baseline(start: datetime, now: datetime) -> float:
    """A plain scan in the same run: one SUM over the period's daily rows."""
    from django.db import connection

    started = clock.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT SUM(requests) FROM reporting_demanddaily WHERE day >= %s AND day < %s",
            [start, now],
        )
        cursor.fetchall()
    return clock.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--line-items", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--flight-days", type=int, default=30)
    parser.add_argument("--placements", type=int, default=2)
    parser.add_argument("--hourly-days", type=int, default=35)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="leave the rows in place")
    parser.add_argument("--no-months", action="store_true", help="no monthly rows")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("bench/reports.py needs DATABASE_URL=postgres://... (a migrated database)")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "adsplatform.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.db import connection

    now = datetime.now(UTC)
    started = clock.perf_counter()
    daily, hourly, monthly, marks, month_marks = generate(args, now)
    print(
        f"generated {daily:,} daily, {monthly:,} monthly and {hourly:,} hourly rows for "
        f"{args.line_items:,} line items "
        f"({args.flight_days}-day flights on {args.placements} placements over {args.days} days; "
        f"hourly for the last {args.hourly_days} days) in {clock.perf_counter() - started:.1f} s"
    )
    try:
        time_reports(args, now)
    finally:
        if not args.keep:
            with connection.cursor() as cursor:
                _clean(cursor, marks, month_marks)


if __name__ == "__main__":
    main()
