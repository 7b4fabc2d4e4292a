"""The measurement report: requests, QPS, fill, win rates, RPM, eCPM, CTR, creative failures,
viewability and video completion, grouped by one dimension, over `DemandHourly`,
`DemandDaily` and `DemandMonthly` together (a period reads the hours still kept hourly, the
days rolled up and, grouped by anything but time, the whole months rolled up).

Counts add; amounts are converted into the report currency per UTC day at the rates in
effect then (`reporting.measurement.fx`) before they add, and an amount with no rate is
shown apart, never added. The conversion happens in SQL (each row's spend times its day's
rate, from a JSON table of the period's days), so every figure comes from one grouped query
per tier (hourly, daily, monthly), whatever the number of rows; months are read only for
amounts in the report currency (a month has no single rate), the other currencies' days
from the daily rows.
"""

import json
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, overload
from zoneinfo import ZoneInfo

from django.db import connection, transaction
from django.db.models import DecimalField, IntegerField, Max, Min, Q, QuerySet, Sum
from django.db.models.expressions import RawSQL

from campaigns.models import Campaign, LineItem, Placement, Publisher
from reporting.measurement.fx import FxHistory
from reporting.measurement.sources import Split, split_period
from reporting.reports.tables import money, percent
from serving.models import Buyer

# Grouping name -> the rollup column it groups by (None: the row's time).
GROUPS: dict[str, str | None] = {
    "day": None,
    "hour": None,
    "campaign": "campaign_id",
    "line_item": "line_item_id",
    "placement": "placement_id",
    "publisher": "placement_id",  # folded into publishers after the query
    "buyer": "buyer_id",
    "door": "door",
    "country": "country",  # from the country and device rollup (GeoDevice*)
    "device": "device_type",
}
# Groupings read from the country and device rollup, and the figures it has.
GEO_GROUPS = ("country", "device")
GEO_FIGURES = frozenset(
    {"requests", "wins", "impressions", "clicks", "own_wins", "buyer_wins", "qps", "fill_rate",
     "our_win_rate", "spend", "rpm", "ecpm", "ctr", "unconverted"}
)  # fmt: skip
# OpenRTB device types (AdCOM), for the labels.
DEVICE_TYPES = {
    1: "Mobile/tablet", 2: "Personal computer", 3: "Connected TV", 4: "Phone", 5: "Tablet",
    6: "Connected device", 7: "Set-top box", 8: "Out-of-home",
}  # fmt: skip
COUNTS = (
    "requests", "bids", "wins", "impressions", "clicks", "errors", "viewable", "measurable",
    "video_start", "first_quartile", "midpoint", "third_quartile", "complete", "skip", "mute",
    "pause",
)  # fmt: skip
# What the rollups do not have, said on the page and in the API rather than faked.
NOT_IN_ROLLUP = (
    "Creative failures by error code are in their own table (per creative kind and code, "
    "GET /api/v1/reports/creative-failures/); this one counts them per row."
)
GEO_NOTE = (
    "By country and device type the report reads their own rollup: requests, wins, "
    "impressions, clicks and spend only (bids, errors, viewability and video events are "
    "not kept per country). Events from before they carried a country count as unknown."
)
DAILY_NOTE = (
    "Hours older than {days} days are kept as UTC days: such a day counts in the period "
    "that holds its midday (UTC) and shows at 00:00 UTC when grouped by hour."
)


# Memory a report's grouping may take in Postgres (per sort or hash, per worker): enough for
# a year of 10,000 line items' groups (about 20 MB).
WORK_MEM = "64MB"

# Counted in the rollup, not shown in the report: left out of its sums.
UNREPORTED = ("skip", "mute", "pause")
REPORTED = tuple(name for name in COUNTS if name not in UNREPORTED)


def _sums(model: Any) -> dict[str, Any]:
    """The sums of `model`'s counts; wins are ours on our line items' rows, buyers' on
    external demand's (line item 0: the unfilled rows have no wins)."""
    fields = {f.name for f in model._meta.get_fields()}
    sums: dict[str, Any] = {f"s_{name}": Sum(name) for name in REPORTED if name in fields}
    sums["s_own_wins"] = Sum("wins", filter=Q(line_item_id__gt=0))
    sums["s_buyer_wins"] = Sum("wins", filter=Q(line_item_id=0))
    sums["s_spend"] = Sum("spend")
    return sums


_SUMMED = tuple((name, f"s_{name}") for name in (*REPORTED, "own_wins", "buyer_wins"))


@dataclass
class Totals:
    """Sums of one report row; amounts already in the report currency."""

    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    spend: Decimal = Decimal(0)
    # Amounts that had no rate into the report currency, per currency: shown, never added.
    unconverted: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    seconds: float = 0.0  # how long the row covers, for QPS

    def add_counts(self, row: dict[str, Any]) -> None:
        counts = self.counts
        for name, column in _SUMMED:
            n = row.get(column)
            if n:
                counts[name] += n

    def merge(self, other: "Totals") -> None:
        for name, n in other.counts.items():
            self.counts[name] += n
        self.spend += other.spend
        for code, amount in other.unconverted.items():
            self.unconverted[code] += amount

    def metrics(self, figures: frozenset[str] | None = None) -> dict[str, Any]:
        """The row's figures; with `figures`, the others (not kept in the source) None."""
        shown = self._metrics()
        if figures is None:
            return shown
        return {k: v if k in figures else None for k, v in shown.items()}

    def _metrics(self) -> dict[str, Any]:
        c = self.counts
        requests, imps, spend = c["requests"], c["impressions"], self.spend
        return {
            **{name: c[name] for name in (*REPORTED, "own_wins", "buyer_wins")},
            "qps": Decimal(requests / self.seconds).quantize(Decimal("0.001"))
            if self.seconds
            else None,
            "fill_rate": percent(c["wins"], requests),
            # Ours: the share of ad requests our own line items won; a buyer's: wins / bids.
            "our_win_rate": percent(c["own_wins"], requests),
            "buyer_win_rate": percent(c["buyer_wins"], c["bids"]),
            "spend": money(spend),
            "rpm": money(spend * 1000 / requests) if requests else None,
            "ecpm": money(spend * 1000 / imps) if imps else None,
            "ctr": percent(c["clicks"], imps),
            "error_rate": percent(c["errors"], imps),
            "viewability": percent(c["viewable"], c["measurable"]),
            "completion_rate": percent(c["complete"], c["video_start"]),
            "first_quartile_rate": percent(c["first_quartile"], c["video_start"]),
            "midpoint_rate": percent(c["midpoint"], c["video_start"]),
            "third_quartile_rate": percent(c["third_quartile"], c["video_start"]),
            "unconverted": {code: str(money(v)) for code, v in sorted(self.unconverted.items())},
        }


@dataclass
class Source:
    """The rows a report reads: the hourly, daily and monthly rollups, already scoped."""

    hourly: QuerySet[Any]
    daily: QuerySet[Any]
    monthly: QuerySet[Any] | None = None
    # The figures these rollups have (None: all of them).
    figures: frozenset[str] | None = None

    def within(self, split: Split, currency: str) -> "Source":
        monthly = None if self.monthly is None else split.months(self.monthly, currency)
        hours, days = split.hours(self.hourly), split.days(self.daily, currency=currency)
        return Source(hours, days, monthly, self.figures)

    def tables(self) -> list[tuple[QuerySet[Any], str]]:
        """Each rollup with its time column."""
        out = [(self.hourly, "hour"), (self.daily, "day")]
        return out if self.monthly is None else [*out, (self.monthly, "month")]


@dataclass
class MeasurementReport:
    group: str
    currency: str
    start: datetime
    end: datetime
    zone: ZoneInfo
    rows: Sequence[dict[str, Any]]
    totals: dict[str, Any]
    fx_note: str
    notes: list[str]


def _key(group: str, row: dict[str, Any], time_field: str, zone: ZoneInfo) -> Any:
    if group == "hour":
        return row[time_field]
    if group == "day":
        at: datetime = row[time_field]
        # A rolled-up row is a UTC day already; an hour is counted in its local day.
        return at.date() if time_field == "day" else at.astimezone(zone).date()
    column = GROUPS[group]
    assert column is not None  # noqa: S101 - only day and hour have none
    return row[column]


def _columns(group: str, time_field: str) -> list[str]:
    column = GROUPS[group]
    return [time_field] if column is None else [column]


def _amounts(model: Any, time_field: str, currency: str, rates: str, days: str) -> dict[str, Any]:
    """Spend of a group's rows not in the report currency, converted in SQL at the rate of
    each row's UTC day (`rates`: JSON of `FxHistory.factors`), the part with no rate (never
    converted, shown apart), and the oldest and newest rate source those days used (`days`:
    JSON of `FxHistory.sources`), for the note."""
    table = model._meta.db_table
    spend, code = f'"{table}"."spend"', f'"{table}"."currency"'
    if connection.vendor == "postgresql":
        day = f"""to_char("{table}"."{time_field}" AT TIME ZONE 'UTC', 'YYYY-MM-DD')"""
        factor = f"((%s::jsonb) ->> ({code} || {day}))::numeric"
        source = f"((%s::jsonb) ->> {day})::int"
    else:  # SQLite (the demo): times are stored in UTC
        day = f"""strftime('%%Y-%%m-%%d', "{table}"."{time_field}")"""
        factor = f"""json_extract(%s, '$."' || {code} || {day} || '"')"""
        source = f"""json_extract(%s, '$."' || {day} || '"')"""
    money_field = DecimalField(max_digits=30, decimal_places=9)
    foreign_source = f"CASE WHEN {code} <> %s THEN {source} END"
    # Only column names from the model go into the SQL; the values are parameters.
    return {
        "s_converted": Sum(
            RawSQL(f"CASE WHEN {code} <> %s THEN {spend} * {factor} END",  # noqa: S611
                   [currency, rates], output_field=money_field),
        ),
        "s_unconverted": Sum(
            RawSQL(f"CASE WHEN {code} <> %s AND {factor} IS NULL THEN {spend} END",  # noqa: S611
                   [currency, rates], output_field=money_field),
        ),
        "s_source_min": Min(RawSQL(foreign_source, [currency, days],  # noqa: S611
                                   output_field=IntegerField())),
        "s_source_max": Max(RawSQL(foreign_source, [currency, days],  # noqa: S611
                                   output_field=IntegerField())),
    }  # fmt: skip


def measure(
    source: Source,
    group: str,
    currency: str,
    start: datetime,
    end: datetime,
    zone: ZoneInfo,
    now: datetime,
    hourly_days: int,
) -> MeasurementReport:
    """The report of `source` in [start, end) grouped by `group`, amounts in `currency`."""
    over_time = group in ("day", "hour")
    split = split_period(
        start, end, now, hourly_days, prefer_hours=group == "hour",
        months=not over_time and source.monthly is not None,
    )  # fmt: skip
    rows = source.within(split, currency)
    fx = FxHistory((min(end, now) + timedelta(days=1)).date())
    first = min(start, split.day_from).astimezone(UTC).date()
    last = (max(end, split.day_to) - timedelta(microseconds=1)).astimezone(UTC).date()
    # Grouped by time, each row is one UTC hour or day: its amounts are converted here;
    # otherwise in SQL, each row at its day's rate.
    fx_json = None if over_time else (
        json.dumps(fx.factors(first, last, currency)), json.dumps(fx.sources(first, last))
    )  # fmt: skip
    groups: dict[Any, Totals] = defaultdict(Totals)
    sources: list[int | None] = []
    with _tuned():
        fetched = [
            (time_field, list(_grouped(qs, group, time_field, currency, fx_json)))
            for qs, time_field in rows.tables()
        ]
    for time_field, grouped in fetched:
        for row in grouped:
            totals = groups[_key(group, row, time_field, zone)]
            totals.add_counts(row)
            if row["currency"] == currency:
                totals.spend += row["s_spend"] or Decimal(0)
            elif over_time:  # one row per UTC hour or day: converted at its day's rate
                _convert(totals, row, currency, row[time_field].astimezone(UTC).date(), fx)
            else:
                totals.spend += row["s_converted"] or Decimal(0)
                if row["s_unconverted"] is not None:
                    totals.unconverted[row["currency"]] += row["s_unconverted"]
                sources += [row["s_source_min"], row["s_source_max"]]
    fx.mark(sources)
    if group == "publisher":
        groups = _by_publisher(groups)
    covered_end = min(end, now)
    for key, totals in groups.items():
        totals.seconds = _seconds(group, key, start, covered_end, zone)
    whole = Totals(seconds=max(0.0, (covered_end - start).total_seconds()))
    for totals in groups.values():
        whole.merge(totals)
    notes = [NOT_IN_ROLLUP] if source.figures is None else [GEO_NOTE]
    if split.approximate or (group == "hour" and split.day_from < split.day_to):
        notes.append(DAILY_NOTE.format(days=hourly_days))
    fx_note = f"Amounts in {currency}. " + fx.describe()
    return MeasurementReport(
        group, currency, start, end, zone, Rows(_ordered(group, groups), source.figures),
        whole.metrics(source.figures), fx_note, notes,
    )  # fmt: skip


def _convert(totals: Totals, row: dict[str, Any], currency: str, day: date, fx: FxHistory) -> None:
    amount: Decimal = row["s_spend"] or Decimal(0)
    value = fx.convert(amount, row["currency"], currency, day)
    if value is None:
        totals.unconverted[row["currency"]] += amount
    else:
        totals.spend += value


def _grouped(
    qs: QuerySet[Any],
    group: str,
    time_field: str,
    currency: str,
    fx_json: tuple[str, str] | None,
) -> QuerySet[Any]:
    sums = _sums(qs.model)
    if fx_json is not None:
        sums.update(_amounts(qs.model, time_field, currency, *fx_json))
    return qs.values(*_columns(group, time_field), "currency").annotate(**sums).order_by()


@contextmanager
def _tuned() -> Iterator[None]:
    """On Postgres, the report's queries in a transaction that hashes the groups in memory
    (WORK_MEM) rather than sorting them on disk, without JIT compilation: a year's daily
    rows (hundreds of thousands) cost the plan a JIT compile that took longer than what it
    saved."""
    if connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL jit = off; SET LOCAL work_mem = '{WORK_MEM}'")
        yield


class Rows(Sequence[dict[str, Any]]):
    """A report's rows in order, each made into its figures only when read: a page of a
    10,000-row report computes 100."""

    def __init__(self, items: list[tuple[Any, Totals]], figures: frozenset[str] | None) -> None:
        self._items, self._figures = items, figures
        self._made: dict[int, dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def _row(self, i: int) -> dict[str, Any]:
        row = self._made.get(i)
        if row is None:
            key, totals = self._items[i]
            row = self._made[i] = {"key": _json_key(key), **totals.metrics(self._figures)}
        return row

    @overload
    def __getitem__(self, i: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, i: slice) -> list[dict[str, Any]]: ...
    def __getitem__(self, i: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(i, slice):
            return [self._row(j) for j in range(*i.indices(len(self._items)))]
        return self._row(range(len(self._items))[i])


def _ordered(group: str, groups: dict[Any, Totals]) -> list[tuple[Any, Totals]]:
    if group in ("day", "hour"):
        return sorted(groups.items(), key=lambda item: item[0])
    keyed = [
        ((-t.counts["requests"], -t.counts["impressions"], key), key, t)
        for key, t in groups.items()
    ]
    keyed.sort(key=lambda k: k[0])
    return [(key, t) for _, key, t in keyed]


def _by_publisher(groups: dict[Any, Totals]) -> dict[Any, Totals]:
    owner = dict(Placement.objects.filter(pk__in=groups).values_list("pk", "publisher_id"))
    out: dict[Any, Totals] = defaultdict(Totals)
    for placement_id, totals in groups.items():
        out[owner.get(placement_id, 0)].merge(totals)
    return out


def _seconds(group: str, key: Any, start: datetime, end: datetime, zone: ZoneInfo) -> float:
    """How long a row covers within [start, end): its hour, its day or the whole period."""
    if group == "hour":
        low, high = key, key + timedelta(hours=1)
    elif group == "day":
        # Local midnights, compared in UTC: a day of a DST change is 23 or 25 hours long.
        low = datetime(key.year, key.month, key.day, tzinfo=zone).astimezone(UTC)
        after = key + timedelta(days=1)
        high = datetime(after.year, after.month, after.day, tzinfo=zone).astimezone(UTC)
    else:
        low, high = start, end
    return max(0.0, (min(high, end) - max(low, start)).total_seconds())


def _json_key(key: Any) -> Any:
    if isinstance(key, datetime):
        return key.astimezone(UTC).isoformat()
    if isinstance(key, date):
        return key.isoformat()
    return key


def label_rows(group: str, rows: Sequence[dict[str, Any]], zone: ZoneInfo) -> None:
    """Add each row's `label` (a name, or a local time): one query for the rows given."""
    keys = [r["key"] for r in rows]
    names: dict[Any, str] = {}
    model: Any = {
        "campaign": Campaign,
        "line_item": LineItem,
        "placement": Placement,
        "publisher": Publisher,
        "buyer": Buyer,
    }.get(group)
    if model is not None:
        names = dict(model.objects.filter(pk__in=[k for k in keys if k]).values_list("pk", "name"))
    for r in rows:
        key = r["key"]
        if group == "hour":
            r["label"] = f"{datetime.fromisoformat(key).astimezone(zone):%Y-%m-%d %H:00}"
        elif group == "day":
            r["label"] = key
        elif group == "door":
            r["label"] = key or "(not recorded)"
        elif group == "country":
            r["label"] = key or "(unknown)"
        elif group == "device":
            r["label"] = DEVICE_TYPES.get(key, f"type {key}") if key else "(unknown)"
        elif group == "buyer" and not key:
            r["label"] = "Our line items"
        elif (group == "line_item" and not key) or (group == "campaign" and not key):
            r["label"] = "External demand and unfilled"
        else:
            r["label"] = names.get(key, f"#{key}")
