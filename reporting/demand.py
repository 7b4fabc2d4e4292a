"""The measurement rollups (`DemandHourly`, `BuyerLatencyHourly`), written in the same
ingest transaction as `HourlyRollup`: bids and wins per buyer, viewability and video player
events per line item, per door; buyer response-time histograms.

Spend is kept in the currency it was charged in: our line items' impressions and clicks
carry micros of their campaign's currency (`serving.render.costs`), external demand's the
platform currency (SERVING_CURRENCY).

Player and viewability events arrive as kind "evt" with the name in `r` (`serving.measure`
de-duplicates the once-per-decision ones before they reach the stream).
"""

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import F

from campaigns.models import Campaign
from reporting.measurement.sources import midnight, month_start, months_rolled_until, rolled_until
from reporting.measurement.upsert import add_rows
from reporting.models import (
    BuyerLatencyDaily,
    BuyerLatencyHourly,
    DemandDaily,
    DemandHourly,
    DemandMonthly,
)
from reporting.stream import lock_order
from serving.events import Event
from serving.latency import TIMEOUT

NANOS = Decimal(1_000_000_000)

# Player / viewability event name -> DemandHourly column.
PLAYER_COLUMNS = {
    "viewable": "viewable",
    "measurable": "measurable",
    "start": "video_start",
    "firstQuartile": "first_quartile",
    "midpoint": "midpoint",
    "thirdQuartile": "third_quartile",
    "complete": "complete",
    "skip": "skip",
    "mute": "mute",
    "pause": "pause",
}
COUNTS = (
    "requests", "bids", "wins", "impressions", "clicks", "errors", *PLAYER_COLUMNS.values(),
)  # fmt: skip

DemandKey = tuple[datetime, int, int, int, str, str]


@dataclass(slots=True)
class DemandRow:
    campaign_id: int
    advertiser_id: int
    counts: dict[str, int]
    spend_nanos: int


def _hour(ts_ms: int) -> datetime:
    return datetime.fromtimestamp(ts_ms // 3_600_000 * 3600, UTC)


def campaign_currencies(events: list[Event]) -> dict[int, str]:
    """The currency of each campaign the events name (one query per batch)."""
    ids = {e.cp for e in events if e.cp}
    if not ids:
        return {}
    return dict(Campaign.objects.filter(pk__in=ids).values_list("pk", "currency"))


def aggregate_demand(
    events: list[Event], currencies: Mapping[int, str]
) -> dict[DemandKey, DemandRow]:
    """Per (hour, placement, line item, buyer, currency, door): the counts and spend of the
    batch; `currencies` maps campaign ids to their currency (the platform's otherwise)."""
    platform = settings.SERVING_CURRENCY
    rows: dict[DemandKey, DemandRow] = {}
    for e in events:
        t = e.t
        if t == "req":
            columns: tuple[str, ...] = ("requests", "wins") if (e.li or e.b) else ("requests",)
        elif t == "bid":
            columns = ("bids",)
        elif t == "imp":
            columns = ("impressions",)
        elif t == "clk":
            columns = ("clicks",)
        elif t == "err":
            columns = ("errors",)
        elif t == "evt" and e.r in PLAYER_COLUMNS:
            columns = (PLAYER_COLUMNS[e.r],)
        else:
            continue
        # External demand is its buyer's row (line item 0, buyer set), never the unfilled one.
        currency = currencies.get(e.cp, platform) if e.cp else platform
        key = (_hour(e.ts), e.pl, e.li, 0 if e.li else e.b, currency, e.dr[:8])
        row = rows.get(key)
        if row is None:
            row = rows[key] = DemandRow(e.cp, e.adv, defaultdict(int), 0)
        for column in columns:
            row.counts[column] += 1
        if t in ("imp", "clk"):
            row.spend_nanos += e.cpm
    return rows


def write_demand(rows: dict[DemandKey, DemandRow]) -> None:
    """Add the batch's rows to their hours (one statement per table, `add_rows`). An event
    for a day already summed into DemandDaily (late: its token was about to expire) goes
    into its day too, and into its month when that is summed, so that they never disagree."""
    done = rolled_until() if rows else None
    months_done = months_rolled_until() if done is not None else None
    tiers: dict[Any, list[Any]] = {DemandHourly: [], DemandDaily: [], DemandMonthly: []}
    for (hour, placement_id, line_item_id, buyer_id, currency, door), r in lock_order(rows):
        key = {
            "placement_id": placement_id, "line_item_id": line_item_id,
            "buyer_id": buyer_id, "currency": currency, "door": door,
        }  # fmt: skip
        owner = {"campaign_id": r.campaign_id, "advertiser_id": r.advertiser_id}
        amounts: dict[str, Any] = {c: r.counts.get(c, 0) for c in COUNTS}
        amounts["spend"] = Decimal(r.spend_nanos) / NANOS
        tiers[DemandHourly].append(({"hour": hour, **key}, owner, amounts))
        if done is not None and hour < done:
            tiers[DemandDaily].append(({"day": midnight(hour), **key}, owner, amounts))
        if months_done is not None and hour < months_done:
            tiers[DemandMonthly].append(({"month": month_start(hour), **key}, owner, amounts))
    for model, batch in tiers.items():
        add_rows(model, batch)


LatencyKey = tuple[datetime, int, int]


def aggregate_latency(events: list[Event]) -> dict[LatencyKey, int]:
    """(hour, buyer, bucket) to answers, from serving's "lat" events."""
    counts: dict[LatencyKey, int] = defaultdict(int)
    for e in events:
        if e.t != "lat" or not e.r.isdigit():
            continue
        bucket = int(e.r)
        if 0 <= bucket <= TIMEOUT and e.n > 0:
            counts[(_hour(e.ts), e.b, bucket)] += e.n
    return counts


def write_latency(counts: dict[LatencyKey, int]) -> None:
    done = rolled_until() if counts else None
    for (hour, buyer_id, bucket), n in lock_order(counts):
        tables: list[tuple[Any, dict[str, Any]]] = [(BuyerLatencyHourly, {"hour": hour})]
        if done is not None and hour < done:  # late, as in write_demand
            tables.append((BuyerLatencyDaily, {"day": midnight(hour)}))
        for model, at in tables:
            row, _ = model.objects.get_or_create(**at, buyer_id=buyer_id, bucket=bucket)
            model.objects.filter(pk=row.pk).update(count=F("count") + n)
