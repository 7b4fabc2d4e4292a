"""The report's tables: delivery by campaign, line item, creative, placement, day and hour.

Every table is built from a bounded number of grouped queries (one per table, one per
name lookup), whatever the number of rows. Spend is in each campaign's currency: rows carry
it, and nothing adds amounts of two currencies together.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db.models import F, OuterRef, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.urls import reverse

from campaigns.models import Campaign, LineItem, Placement
from creatives.models import Creative
from reporting.conversions.reports import COLUMNS as CONVERSION_COLUMNS
from reporting.conversions.reports import ConversionSums, conversions_by_campaign
from reporting.reports.periods import Period

CENTS = Decimal("0.01")
Metric = int | Decimal | None
Cell = str | Metric


def money(value: Decimal) -> Decimal:
    return value.quantize(CENTS, rounding=ROUND_HALF_UP)


def percent(part: int | Decimal, whole: int | Decimal) -> Decimal | None:
    if not whole:
        return None
    return money(Decimal(part) * 100 / Decimal(whole))


@dataclass
class Sums:
    impressions: int = 0
    clicks: int = 0
    errors: int = 0
    spend: Decimal = Decimal(0)

    def add(self, row: dict[str, Any]) -> None:
        self.impressions += row["impressions"] or 0
        self.clicks += row["clicks"] or 0
        self.errors += row["errors"] or 0
        self.spend += row["spend"] or Decimal(0)

    @property
    def metrics(self) -> list[Metric]:
        """Impressions, clicks, CTR %, spend, eCPM, CPC, creative error rate %."""
        imps, clicks, spend = self.impressions, self.clicks, self.spend
        return [
            imps,
            clicks,
            percent(clicks, imps),
            money(spend),
            money(spend * 1000 / imps) if imps else None,
            money(spend / clicks) if clicks else None,
            percent(self.errors, imps),
        ]


METRIC_COLUMNS = [
    "Impressions",
    "Clicks",
    "CTR %",
    "Spend",
    "eCPM",
    "CPC",
    "Creative error rate %",
]
SUMS = {
    "impressions": Sum("impressions"),
    "clicks": Sum("clicks"),
    "errors": Sum("errors"),
    "spend": Sum("spend"),
}


@dataclass
class Table:
    key: str
    title: str
    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    # Per row, a page the first cell links to (the campaign table: its pacing chart).
    links: list[str] = field(default_factory=list)

    @property
    def currency_at(self) -> int:
        """Where the currency column is: the metrics follow it."""
        return self.columns.index("Currency")


def with_currency[Q: QuerySet[Any]](rows: Q) -> Q:
    """Rows annotated with their campaign's currency (one subquery, not one per row)."""
    currency = Campaign.objects.filter(pk=OuterRef("campaign_id")).values("currency")[:1]
    return rows.annotate(currency=Coalesce(Subquery(currency), Value("")))


def _grouped(rows: QuerySet[Any], *keys: str) -> list[dict[str, Any]]:
    return list(with_currency(rows).values(*keys, "currency").annotate(**SUMS).order_by())


def _ordered(rows: list[list[Cell]], at: int = 0) -> list[list[Cell]]:
    # Most impressions first, then by name: the table an advertiser scans top down.
    return sorted(rows, key=lambda r: (-int(r[at] or 0), [str(c) for c in r[:at]]))


def _budget_used(spend: Decimal, daily: Decimal | None, days: int) -> Decimal | None:
    return percent(spend, daily * days) if daily else None


def by_campaign(rows: QuerySet[Any], period: Period) -> Table:
    grouped = _grouped(rows, "campaign_id")
    campaigns = {
        c["pk"]: c
        for c in Campaign.objects.filter(pk__in=[g["campaign_id"] for g in grouped]).values(
            "pk", "name", "daily_budget"
        )
    }
    converted = conversions_by_campaign(list(campaigns), period.start, period.end)
    out = []
    for g in grouped:
        sums = Sums()
        sums.add(g)
        c = campaigns.get(g["campaign_id"], {"name": f"#{g['campaign_id']}", "daily_budget": None})
        used = _budget_used(sums.spend, c["daily_budget"], period.days)
        conv = converted.get(g["campaign_id"], ConversionSums()).metrics(sums.clicks, sums.spend)
        out.append([c["name"], g["currency"], *sums.metrics, used, *conv, g["campaign_id"]])
    columns = ["Campaign", "Currency", *METRIC_COLUMNS, "Budget used %", *CONVERSION_COLUMNS]
    ordered = _ordered(out, 2)
    links = [reverse("pacing-chart", args=[row.pop()]) for row in ordered]
    return Table("campaign", "By campaign", columns, ordered, links)


def by_line_item(rows: QuerySet[Any], period: Period) -> Table:
    grouped = _grouped(rows, "line_item_id", "campaign_id")
    items = {
        li["pk"]: li
        for li in LineItem.objects.filter(pk__in=[g["line_item_id"] for g in grouped]).values(
            "pk", "name", "daily_budget", campaign_name=F("campaign__name")
        )
    }
    out = []
    for g in grouped:
        sums = Sums()
        sums.add(g)
        li = items.get(
            g["line_item_id"],
            {"name": f"#{g['line_item_id']}", "daily_budget": None, "campaign_name": ""},
        )
        used = _budget_used(sums.spend, li["daily_budget"], period.days)
        out.append([li["campaign_name"], li["name"], g["currency"], *sums.metrics, used])
    columns = ["Campaign", "Line item", "Currency", *METRIC_COLUMNS, "Budget used %"]
    return Table("line_item", "By line item", columns, _ordered(out, 3))


def by_creative(rows: QuerySet[Any]) -> Table:
    grouped = _grouped(rows, "creative_id", "line_item_id")
    names = dict(
        Creative.objects.filter(pk__in=[g["creative_id"] for g in grouped]).values_list(
            "pk", "name"
        )
    )
    li_names = dict(
        LineItem.objects.filter(pk__in=[g["line_item_id"] for g in grouped]).values_list(
            "pk", "name"
        )
    )
    out = []
    for g in grouped:
        sums = Sums()
        sums.add(g)
        creative = names.get(g["creative_id"], f"#{g['creative_id']}")
        line_item = li_names.get(g["line_item_id"], f"#{g['line_item_id']}")
        out.append([creative, line_item, g["currency"], *sums.metrics])
    columns = ["Creative", "Line item", "Currency", *METRIC_COLUMNS]
    return Table("creative", "By creative", columns, _ordered(out, 3))


def by_placement(rows: QuerySet[Any]) -> Table:
    grouped = _grouped(rows, "placement_id")
    names = {
        p["pk"]: f"{p['publisher__name']} / {p['name']}"
        for p in Placement.objects.filter(pk__in=[g["placement_id"] for g in grouped]).values(
            "pk", "name", "publisher__name"
        )
    }
    out = []
    for g in grouped:
        sums = Sums()
        sums.add(g)
        out.append(
            [names.get(g["placement_id"], f"#{g['placement_id']}"), g["currency"], *sums.metrics]
        )
    columns = ["Placement", "Currency", *METRIC_COLUMNS]
    return Table("placement", "By placement", columns, _ordered(out, 2))


@dataclass
class Timeline:
    """Per local hour and currency: the day and hour tables, the totals and the chart."""

    hours: dict[tuple[datetime, str], Sums]

    @property
    def totals(self) -> dict[str, Sums]:
        out: dict[str, Sums] = defaultdict(Sums)
        for (_, currency), s in self.hours.items():
            _merge(out[currency], s)
        return dict(sorted(out.items()))


def _merge(into: Sums, s: Sums) -> None:
    into.impressions += s.impressions
    into.clicks += s.clicks
    into.errors += s.errors
    into.spend += s.spend


def timeline(rows: QuerySet[Any], period: Period) -> Timeline:
    hours: dict[tuple[datetime, str], Sums] = defaultdict(Sums)
    for g in _grouped(rows, "hour"):
        hours[(g["hour"].astimezone(period.zone), g["currency"])].add(g)
    return Timeline(dict(hours))


def by_day(line: Timeline) -> Table:
    days: dict[tuple[str, str], Sums] = defaultdict(Sums)
    for (hour, currency), s in line.hours.items():
        _merge(days[(f"{hour:%Y-%m-%d}", currency)], s)
    rows: list[list[Cell]] = [[d, c, *s.metrics] for (d, c), s in sorted(days.items())]
    return Table("day", "By day", ["Day", "Currency", *METRIC_COLUMNS], rows)


def by_hour(line: Timeline) -> Table:
    rows: list[list[Cell]] = [
        [f"{hour:%Y-%m-%d %H:00}", c, *s.metrics] for (hour, c), s in sorted(line.hours.items())
    ]
    return Table("hour", "By hour", ["Hour", "Currency", *METRIC_COLUMNS], rows)


TABLES = ("campaign", "line_item", "creative", "placement", "day", "hour")


def build_tables(
    rollups: QuerySet[Any], creatives: QuerySet[Any], period: Period, only: Iterable[str] = TABLES
) -> tuple[dict[str, Table], Timeline]:
    """The tables asked for, and the timeline they and the chart share."""
    only = set(only)
    line = timeline(rollups, period)
    tables: dict[str, Table] = {}
    if "campaign" in only:
        tables["campaign"] = by_campaign(rollups, period)
    if "line_item" in only:
        tables["line_item"] = by_line_item(rollups, period)
    if "creative" in only:
        tables["creative"] = by_creative(creatives)
    if "placement" in only:
        tables["placement"] = by_placement(rollups)
    if "day" in only:
        tables["day"] = by_day(line)
    if "hour" in only:
        tables["hour"] = by_hour(line)
    return {k: tables[k] for k in TABLES if k in tables}, line
