"""Rollups kept beside `HourlyRollup`, written in the same ingest transaction."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from reporting.measurement.upsert import add_rows
from reporting.models import CreativeHourly, RequestKeyHourly
from reporting.stream import OWNER, hour_of, lock_order
from serving.events import Event
from serving.request_keys import decode_key

NANOS = Decimal(1_000_000_000)


@dataclass
class _CreativeTotals:
    campaign_id: int = 0
    advertiser_id: int = 0
    impressions: int = 0
    clicks: int = 0
    errors: int = 0
    spend_nanos: int = 0


CreativeKey = tuple[datetime, int, int]


_hour = hour_of


def aggregate_creatives(events: list[Event]) -> dict[CreativeKey, _CreativeTotals]:
    """(hour, line item, creative) totals of impressions, clicks and creative errors."""
    totals: dict[CreativeKey, _CreativeTotals] = defaultdict(_CreativeTotals)
    for e in events:
        if e.t not in ("imp", "clk", "err") or not e.li:
            continue
        row = totals[(_hour(e.ts), e.li, e.cr)]
        row.campaign_id, row.advertiser_id = e.cp, e.adv
        if e.t == "imp":
            row.impressions += 1
            row.spend_nanos += e.cpm
        elif e.t == "clk":
            row.clicks += 1
            row.spend_nanos += e.cpm  # a CPC click's price, as in HourlyRollup
        else:
            row.errors += 1
    return totals


def write_creatives(totals: dict[CreativeKey, _CreativeTotals]) -> None:
    add_rows(
        CreativeHourly, ("hour", "line_item_id", "creative_id"),
        OWNER, ("impressions", "clicks", "errors", "spend"),
        [
            (*key, t.campaign_id, t.advertiser_id, t.impressions, t.clicks, t.errors,
             Decimal(t.spend_nanos) / NANOS)
            for key, t in lock_order(totals)
        ],
    )  # fmt: skip


RequestKey = tuple[datetime, int, str, str, int, str]


def aggregate_request_keys(events: list[Event]) -> dict[RequestKey, int]:
    """(hour, placement, slots, country, device type, channel) to opportunities."""
    counts: dict[RequestKey, int] = defaultdict(int)
    for e in events:
        if e.t != "keys":
            continue
        slots, country, devicetype, channel = decode_key(e.r)
        counts[
            (_hour(e.ts), e.pl, ",".join(slots)[:200], country[:2], devicetype, channel[:10])
        ] += e.n
    return counts


def write_request_keys(counts: dict[RequestKey, int]) -> None:
    add_rows(
        RequestKeyHourly,
        ("hour", "placement_id", "slots", "country", "device_type", "channel"), (),
        ("requests",), [(*key, n) for key, n in lock_order(counts)],
    )  # fmt: skip
