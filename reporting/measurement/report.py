"""The measurement report: requests, QPS, fill, win rates, RPM, eCPM, CTR, creative failures,
viewability and video completion, grouped by one dimension, over `DemandHourly` and
`DemandDaily` together (a period reads the hours still kept hourly and the days rolled up).

Counts add; amounts are converted into the report currency per UTC day at the rates in
effect then (`reporting.measurement.fx`) before they add, and an amount with no rate is
shown apart, never added. Every figure comes from a fixed number of grouped queries: two
(hourly, daily) for the counts and, when some rows are in another currency, two more for
their amounts per day, whatever the number of rows.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import Q, QuerySet, Sum
from django.db.models.functions import TruncDate

from campaigns.models import Campaign, LineItem, Placement, Publisher
from reporting.measurement.fx import FxHistory
from reporting.measurement.sources import Split, split_period
from reporting.models import DemandDaily, DemandHourly
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
}
COUNTS = (
    "requests", "bids", "wins", "impressions", "clicks", "errors", "viewable", "measurable",
    "video_start", "first_quartile", "midpoint", "third_quartile", "complete", "skip", "mute",
    "pause",
)  # fmt: skip
# What the rollups do not have, said on the page and in the API rather than faked.
NOT_IN_ROLLUP = (
    "Country and device type are not kept in the measurement rollup (impressions and clicks "
    "do not carry them), so this report cannot group by them; creative failures are counted "
    "per line item and creative, not per error code."
)
DAILY_NOTE = (
    "Hours older than {days} days are kept as UTC days: such a day counts in the period "
    "that holds its midday (UTC) and shows at 00:00 UTC when grouped by hour."
)


# Counted in the rollup, not shown in the report: left out of its sums.
UNREPORTED = ("skip", "mute", "pause")
REPORTED = tuple(name for name in COUNTS if name not in UNREPORTED)


def _sums() -> dict[str, Any]:
    sums: dict[str, Any] = {f"s_{name}": Sum(name) for name in REPORTED}
    sums["s_own_wins"] = Sum("wins", filter=Q(buyer_id=0))
    sums["s_buyer_wins"] = Sum("wins", filter=Q(buyer_id__gt=0))
    sums["s_spend"] = Sum("spend")
    return sums


@dataclass
class Totals:
    """Sums of one report row; amounts already in the report currency."""

    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    spend: Decimal = Decimal(0)
    # Amounts that had no rate into the report currency, per currency: shown, never added.
    unconverted: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    seconds: float = 0.0  # how long the row covers, for QPS

    def add_counts(self, row: dict[str, Any]) -> None:
        for name in (*REPORTED, "own_wins", "buyer_wins"):
            self.counts[name] += row[f"s_{name}"] or 0

    def merge(self, other: "Totals") -> None:
        for name, n in other.counts.items():
            self.counts[name] += n
        self.spend += other.spend
        for code, amount in other.unconverted.items():
            self.unconverted[code] += amount

    def metrics(self) -> dict[str, Any]:
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
    """The rows a report reads: the hourly and the daily rollup, already scoped."""

    hourly: QuerySet[DemandHourly]
    daily: QuerySet[DemandDaily]

    def within(self, split: Split) -> "Source":
        return Source(split.hours(self.hourly), split.days(self.daily))


@dataclass
class MeasurementReport:
    group: str
    currency: str
    start: datetime
    end: datetime
    zone: ZoneInfo
    rows: list[dict[str, Any]]
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
    split = split_period(start, end, now, hourly_days, prefer_hours=group == "hour")
    rows = source.within(split)
    fx = FxHistory((min(end, now) + timedelta(days=1)).date())
    groups: dict[Any, Totals] = defaultdict(Totals)
    foreign: set[str] = set()
    for qs, time_field in ((rows.hourly, "hour"), (rows.daily, "day")):
        columns = _columns(group, time_field)
        for row in qs.values(*columns, "currency").annotate(**_sums()).order_by():
            totals = groups[_key(group, row, time_field, zone)]
            totals.add_counts(row)
            if row["currency"] == currency:
                totals.spend += row["s_spend"] or Decimal(0)
            else:
                foreign.add(row["currency"])
    if foreign:
        _convert(rows, group, sorted(foreign), currency, zone, fx, groups)
    if group == "publisher":
        groups = _by_publisher(groups)
    covered_end = min(end, now)
    for key, totals in groups.items():
        totals.seconds = _seconds(group, key, start, covered_end, zone)
    whole = Totals(seconds=max(0.0, (covered_end - start).total_seconds()))
    for totals in groups.values():
        whole.merge(totals)
    ordered = sorted(groups.items(), key=_order(group))
    out = [{"key": _json_key(key), **totals.metrics()} for key, totals in ordered]
    notes = [NOT_IN_ROLLUP]
    if split.approximate or (group == "hour" and split.day_from < split.day_to):
        notes.append(DAILY_NOTE.format(days=hourly_days))
    fx_note = f"Amounts in {currency}. " + fx.describe()
    return MeasurementReport(
        group, currency, start, end, zone, out, whole.metrics(), fx_note, notes
    )


def _convert(
    rows: Source,
    group: str,
    foreign: list[str],
    currency: str,
    zone: ZoneInfo,
    fx: FxHistory,
    groups: dict[Any, Totals],
) -> None:
    """Amounts not in the report currency, per UTC day, at that day's rates."""
    for qs, time_field in ((rows.hourly, "hour"), (rows.daily, "day")):
        columns = _columns(group, time_field)
        per_day = (
            # By name, not "not the report currency": the (currency, day) index then reads
            # only the rows to convert.
            qs.filter(currency__in=foreign)
            .annotate(utc_day=TruncDate(time_field, tzinfo=UTC))
            .values(*columns, "currency", "utc_day")
            .annotate(amount=Sum("spend"))
            .order_by()
        )
        for row in per_day:
            totals = groups[_key(group, row, time_field, zone)]
            amount: Decimal = row["amount"] or Decimal(0)
            converted = fx.convert(amount, row["currency"], currency, row["utc_day"])
            if converted is None:
                totals.unconverted[row["currency"]] += amount
            else:
                totals.spend += converted


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


def _order(group: str) -> Any:
    if group in ("day", "hour"):
        return lambda item: item[0]
    return lambda item: (-item[1].counts["requests"], -item[1].counts["impressions"], item[0])


def _json_key(key: Any) -> Any:
    if isinstance(key, datetime):
        return key.astimezone(UTC).isoformat()
    if isinstance(key, date):
        return key.isoformat()
    return key


def label_rows(group: str, rows: list[dict[str, Any]], zone: ZoneInfo) -> None:
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
        elif group == "buyer" and not key:
            r["label"] = "Our line items"
        elif (group == "line_item" and not key) or (group == "campaign" and not key):
            r["label"] = "External demand and unfilled"
        else:
            r["label"] = names.get(key, f"#{key}")
