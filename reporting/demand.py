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
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings

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
from reporting.stream import OWNER, hour_of, lock_order
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
DEMAND_KEY = ("placement_id", "line_item_id", "buyer_id", "currency", "door")
DEMAND_AMOUNTS = (*COUNTS, "spend")
# The COUNTS positions each kind of event adds one to ("req": without and with a win).
_AT = {c: i for i, c in enumerate(COUNTS)}
_ADDS = {"bid": (_AT["bids"],), "imp": (_AT["impressions"],), "clk": (_AT["clicks"],),
         "err": (_AT["errors"],)}  # fmt: skip
_REQUEST, _FILLED = (_AT["requests"],), (_AT["requests"], _AT["wins"])
_PLAYER = {name: (_AT[column],) for name, column in PLAYER_COLUMNS.items()}


@dataclass(slots=True)
class DemandRow:
    campaign_id: int
    advertiser_id: int
    counts: list[int]  # in the order of COUNTS
    spend_nanos: int

    def count(self, column: str) -> int:
        return self.counts[_AT[column]]


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
    width = len(COUNTS)
    for e in events:
        t = e.t
        if t == "req":
            adds = _FILLED if (e.li or e.b) else _REQUEST
        elif t == "evt":
            if e.r not in _PLAYER:
                continue
            adds = _PLAYER[e.r]
        elif t in _ADDS:
            adds = _ADDS[t]
        else:
            continue
        # External demand is its buyer's row (line item 0, buyer set), never the unfilled one.
        currency = currencies.get(e.cp, platform) if e.cp else platform
        key = (hour_of(e.ts), e.pl, e.li, 0 if e.li else e.b, currency, e.dr[:8])
        row = rows.get(key)
        if row is None:
            row = rows[key] = DemandRow(e.cp, e.adv, [0] * width, 0)
        for at in adds:
            row.counts[at] += 1
        if t == "imp" or t == "clk":
            row.spend_nanos += e.cpm
    return rows


def write_demand(rows: dict[DemandKey, DemandRow]) -> None:
    """Add the batch's rows to their hours (one statement per table, `add_rows`). An event
    for a day already summed into DemandDaily (late: its token was about to expire) goes
    into its day too, and into its month when that is summed, so that they never disagree."""
    done = rolled_until() if rows else None
    months_done = months_rolled_until() if done is not None else None
    hours: list[tuple[Any, ...]] = []
    days: list[tuple[Any, ...]] = []
    months: list[tuple[Any, ...]] = []
    for (hour, *key), r in lock_order(rows):
        values = (*key, r.campaign_id, r.advertiser_id, *r.counts, Decimal(r.spend_nanos) / NANOS)
        hours.append((hour, *values))
        if done is not None and hour < done:
            days.append((midnight(hour), *values))
        if months_done is not None and hour < months_done:
            months.append((month_start(hour), *values))
    for model, at, batch in ((DemandHourly, "hour", hours), (DemandDaily, "day", days),
                             (DemandMonthly, "month", months)):  # fmt: skip
        add_rows(model, (at, *DEMAND_KEY), OWNER, DEMAND_AMOUNTS, batch)


LatencyKey = tuple[datetime, int, int]


def aggregate_latency(events: list[Event]) -> dict[LatencyKey, int]:
    """(hour, buyer, bucket) to answers, from serving's "lat" events."""
    counts: dict[LatencyKey, int] = defaultdict(int)
    for e in events:
        if e.t != "lat" or not e.r.isdigit():
            continue
        bucket = int(e.r)
        if 0 <= bucket <= TIMEOUT and e.n > 0:
            counts[(hour_of(e.ts), e.b, bucket)] += e.n
    return counts


def write_latency(counts: dict[LatencyKey, int]) -> None:
    done = rolled_until() if counts else None
    hours, days = [], []
    for (hour, buyer_id, bucket), n in lock_order(counts):
        hours.append((hour, buyer_id, bucket, n))
        if done is not None and hour < done:  # late, as in write_demand
            days.append((midnight(hour), buyer_id, bucket, n))
    add_rows(BuyerLatencyHourly, ("hour", "buyer_id", "bucket"), (), ("count",), hours)
    add_rows(BuyerLatencyDaily, ("day", "buyer_id", "bucket"), (), ("count",), days)
