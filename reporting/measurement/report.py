"""The measurement report: requests, QPS, fill, win rates, RPM, eCPM, CTR, creative failures,
viewability and video completion, grouped by one dimension, over `DemandHourly`,
`DemandDaily` and `DemandMonthly` together (a period reads the hours still kept hourly, the
days rolled up and, grouped by anything but time, the whole months rolled up).

Counts add; amounts are converted into the report currency per UTC day at the rates in
effect then (`reporting.measurement.fx`) before they add, and an amount with no rate is
shown apart, never added. Every figure comes from one grouped statement over the three tiers
(`reporting.measurement.grouping`), the conversion in it (each row's spend times its day's
factor, by a join on the period's days), whatever the number of rows; months give every
currency's counts but only the report currency's amounts (a month has no single rate), the
other currencies' amounts come from the months' days. Over time, each grouped row is one UTC
hour or day and is converted here. A group's figures are made only when its row is read (a
page of 100 of 10,000).
"""

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, overload
from zoneinfo import ZoneInfo

from django.db import connection, transaction
from django.db.models import QuerySet

from campaigns.models import Campaign, LineItem, Placement, Publisher
from reporting.measurement.fx import FxHistory
from reporting.measurement.grouping import (
    ALL,
    AT,
    CONVERTED,
    COUNTS,  # noqa: F401 - the roll-up reads it from here
    COUNTS_ONLY,
    CURRENCY,
    EXTERNAL,
    KEY,
    REPORTED,
    SOURCE_MAX,
    SOURCE_MIN,
    SPEND,
    SPEND_ONLY,
    TIER,
    TIME_FIELDS,
    UNCONVERTED,
    Rates,
    grouped_rows,
)
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

_SHOWN = (*REPORTED, "own_wins", "buyer_wins")


@dataclass
class Totals:
    """Sums of one report row; amounts already in the report currency."""

    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    spend: Decimal = Decimal(0)
    # Amounts that had no rate into the report currency, per currency: shown, never added.
    unconverted: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    seconds: float = 0.0  # how long the row covers, for QPS

    def add_counts(self, row: tuple[Any, ...]) -> None:
        """Add a `grouped_rows` row's counts; its wins are ours or buyers' by its kind."""
        counts = self.counts
        for name, i in AT.items():
            n = row[i]
            if n:
                counts[name] += n
        wins = row[AT["wins"]]
        if wins:
            counts["buyer_wins" if row[EXTERNAL] else "own_wins"] += wins

    def add_converted(self, row: tuple[Any, ...], currency: str) -> None:
        """Add a row's spend converted in SQL (`grouped_rows` with rates)."""
        if row[CURRENCY] == currency:
            self.spend += row[SPEND]
            return
        if row[CONVERTED] is not None:
            self.spend += row[CONVERTED]
        if row[UNCONVERTED] is not None:
            self.unconverted[row[CURRENCY]] += row[UNCONVERTED]

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
            **{name: c[name] for name in _SHOWN},
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

    # The days whose counts are in `monthly`: read for their amounts only.
    month_days: list[QuerySet[Any]] = field(default_factory=list)

    def within(self, split: Split, currency: str) -> "Source":
        hours, days = split.hours(self.hourly), split.days(self.daily)
        if self.monthly is None:
            return Source(hours, days, None, self.figures)
        months, month_days = split.months(self.monthly), split.month_days(self.daily, currency)
        return Source(hours, days, months, self.figures, month_days)

    def tables(self) -> list[tuple[QuerySet[Any], str, str]]:
        """Each rollup with its time field and what is read from it."""
        out = [(self.hourly, "hour", ALL), (self.daily, "day", ALL)]
        if self.monthly is not None:
            out.append((self.monthly, "month", COUNTS_ONLY))
        return out + [(days, "day", SPEND_ONLY) for days in self.month_days]


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
    tiers = source.within(split, currency).tables()
    fx = FxHistory((min(end, now) + timedelta(days=1)).date())
    covered_end = min(end, now)
    whole = Totals(seconds=max(0.0, (covered_end - start).total_seconds()))
    if over_time:
        # Each row is one UTC hour or day: its amounts are converted here, at its day's rate.
        with _tuned():
            fetched = grouped_rows(tiers, None, currency, None)
        groups = _over_time(fetched, group, currency, zone, fx)
        for key, totals in groups.items():
            totals.seconds = _seconds(group, key, start, covered_end, zone)
            whole.merge(totals)
        items: list[tuple[Any, Any]] = sorted(groups.items(), key=lambda item: item[0])
        rows = Rows(items, source.figures)
    else:
        first = min(start, split.day_from).astimezone(UTC).date()
        last = (max(end, split.day_to) - timedelta(microseconds=1)).astimezone(UTC).date()
        rates = Rates(fx.factor_rows(first, last, currency), fx.sources(first, last))
        with _tuned():
            fetched = grouped_rows(tiers, GROUPS[group], currency, rates)
        keyed = _keyed(fetched)
        if group == "publisher":
            keyed = _by_publisher(keyed)
        _add_whole(whole, fetched, currency, fx)
        rows = Rows(_ordered(keyed), source.figures, _lazy_totals(currency, whole.seconds))
    notes = [NOT_IN_ROLLUP] if source.figures is None else [GEO_NOTE]
    if split.approximate or (group == "hour" and split.day_from < split.day_to):
        notes.append(DAILY_NOTE.format(days=hourly_days))
    fx_note = f"Amounts in {currency}. " + fx.describe()
    return MeasurementReport(
        group, currency, start, end, zone, rows, whole.metrics(source.figures), fx_note, notes,
    )  # fmt: skip


def _over_time(
    fetched: list[tuple[Any, ...]], group: str, currency: str, zone: ZoneInfo, fx: FxHistory
) -> dict[Any, Totals]:
    groups: dict[Any, Totals] = defaultdict(Totals)
    for row in fetched:
        at: datetime = row[KEY]
        if group == "hour":
            key: Any = at
        else:  # a rolled-up row is a UTC day already; an hour is counted in its local day
            key = at.date() if TIME_FIELDS[row[TIER]] == "day" else at.astimezone(zone).date()
        totals = groups[key]
        totals.add_counts(row)
        amount: Decimal = row[SPEND]
        value = fx.convert(amount, row[CURRENCY], currency, at.astimezone(UTC).date())
        if value is None:
            totals.unconverted[row[CURRENCY]] += amount
        else:
            totals.spend += value
    return groups


def _keyed(fetched: list[tuple[Any, ...]]) -> dict[Any, list[tuple[Any, ...]]]:
    """The rows of each group (one per currency and kind of demand in it)."""
    keyed: dict[Any, list[tuple[Any, ...]]] = {}
    for row in fetched:
        rows = keyed.get(row[KEY])
        if rows is None:
            keyed[row[KEY]] = [row]
        else:
            rows.append(row)
    return keyed


def _add_whole(whole: Totals, fetched: list[tuple[Any, ...]], currency: str, fx: FxHistory) -> None:
    """The report's totals from every row, column by column (no per-group objects), and the
    rate sources the conversions used, for the note."""
    if not fetched:
        return
    columns = list(zip(*fetched, strict=True))
    for name, i in AT.items():
        whole.counts[name] = sum(columns[i])
    external, wins = columns[EXTERNAL], columns[AT["wins"]]
    whole.counts["buyer_wins"] = sum(w for w, e in zip(wins, external, strict=True) if e)
    whole.counts["own_wins"] = whole.counts["wins"] - whole.counts["buyer_wins"]
    sources: list[int | None] = []
    for row in fetched:
        whole.add_converted(row, currency)
        if row[CURRENCY] != currency:
            sources += [row[SOURCE_MIN], row[SOURCE_MAX]]
    fx.mark(sources)


def _lazy_totals(currency: str, seconds: float) -> Callable[[Any], Totals]:
    def make(rows: list[tuple[Any, ...]]) -> Totals:
        totals = Totals(seconds=seconds)
        for row in rows:
            totals.add_counts(row)
            totals.add_converted(row, currency)
        return totals

    return make


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
    10,000-row report computes 100. An item is a key and its `Totals`, or what `make`
    makes them from."""

    def __init__(
        self,
        items: list[tuple[Any, Any]],
        figures: frozenset[str] | None,
        make: Callable[[Any], Totals] | None = None,
    ) -> None:
        self._items, self._figures, self._make = items, figures, make
        self._made: dict[int, dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def _row(self, i: int) -> dict[str, Any]:
        row = self._made.get(i)
        if row is None:
            key, totals = self._items[i]
            if self._make is not None:
                totals = self._make(totals)
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


_REQUESTS, _IMPRESSIONS = AT["requests"], AT["impressions"]


def _ordered(keyed: dict[Any, list[tuple[Any, ...]]]) -> list[tuple[Any, Any]]:
    """Most requests first, then most impressions, then by key."""
    ranked = []
    for key, rows in keyed.items():
        requests = impressions = 0
        for row in rows:
            requests += row[_REQUESTS]
            impressions += row[_IMPRESSIONS]
        ranked.append((-requests, -impressions, key, rows))
    ranked.sort(key=lambda item: item[:3])
    return [(key, rows) for _, _, key, rows in ranked]


def _by_publisher(keyed: dict[Any, list[tuple[Any, ...]]]) -> dict[Any, list[tuple[Any, ...]]]:
    owner = dict(Placement.objects.filter(pk__in=keyed).values_list("pk", "publisher_id"))
    out: dict[Any, list[tuple[Any, ...]]] = defaultdict(list)
    for placement_id, rows in keyed.items():
        out[owner.get(placement_id, 0)] += rows
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
