"""What a slot's decision knew, for the telemetry files (docs/telemetry.md, schema v2).

Encoded once per filled slot into the "req" event's `x` field as a compact JSON array, so
the stream carries the context features, the candidates ranked (bounded) and the chosen
creative's propensity under the current policy (weighted rotation: its weight over the sum
of its line item's eligible creatives' weights). Nothing here does I/O.
"""

import zlib
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import msgspec

from serving.auction import Bid
from serving.context import AdContext

if TYPE_CHECKING:  # serving.engine imports serving.scoring, which imports this
    from serving.engine import Decision

# Prices as JSON numbers straight from their Decimals (the writer reads them back exactly).
_encode = msgspec.json.Encoder(decimal_format="number").encode
# Keywords are hashed (CRC-32): the files hold no free text the page sent.
MAX_KEYWORDS = 20


def _candidate(bid: Bid) -> list[object]:
    payload = bid.payload
    if isinstance(payload, tuple):
        candidate, _creatives, _weights, scored_pctr = payload
        li = candidate.line_item
        # [line item, creative (0: not drawn), tier, bid, score (eCPM), pCTR]: the model's
        # pCTR when it scored the line item, else the prior.
        pctr = scored_pctr if scored_pctr is not None else li.predicted_ctr
        return [li.id, 0, bid.tier, li.bid, bid.ecpm, pctr]
    return [0, 0, bid.tier, bid.ecpm, bid.ecpm, 0.0]  # an external buyer's bid: its CPM


# Hour of week per zone, for the current quarter hour (every zone's offset is a whole number
# of quarter hours): computed once per zone and quarter hour, not per request.
_hours: dict[str, int] = {}
_quarter = -1


def hour_of_week(now: float, zone: str) -> int:
    """0 (Monday 00:00-00:59) to 167 in the zone."""
    global _quarter
    quarter = int(now // 900)
    if quarter != _quarter:
        _hours.clear()
        _quarter = quarter
    hour = _hours.get(zone)
    if hour is None:
        local = datetime.fromtimestamp(quarter * 900, ZoneInfo(zone))
        hour = _hours[zone] = local.weekday() * 24 + local.hour
    return hour


def slot_features(ctx: AdContext, d: "Decision", max_candidates: int) -> str:
    """`[door, format, size, country, region, device type, os, channel, categories,
    keyword hashes, propensity, clearing price (CPM), hour of week in the advertiser's zone
    (UTC for a buyer), candidates]`; the winner first among the candidates."""
    li, cr = d.line_item, d.creative
    candidates: list[list[object]] = []
    if li is not None and cr is not None:
        pctr = d.pctr if d.pctr is not None else li.predicted_ctr
        candidates.append([li.id, cr.id, li.tier, li.bid, d.score, pctr])
    for bid, _code in d.losses[: max(0, max_candidates - len(candidates))]:
        candidates.append(_candidate(bid))
    device, geo = ctx.device, ctx.geo
    features = [
        ctx.source,
        cr.format if cr is not None else "",
        d.size,
        geo.country or "",
        geo.region or "",
        device.devicetype or 0,
        device.os or "",
        ctx.channel or "",
        list(ctx.content_categories),
        [zlib.crc32(k.encode()) for k in ctx.keywords[:MAX_KEYWORDS]],
        d.propensity,
        d.price,
        hour_of_week(ctx.now, li.time_zone if li is not None else "UTC"),
        candidates,
    ]
    return _encode(features).decode()
