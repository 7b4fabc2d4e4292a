"""The rollup by country and device type (`GeoDeviceHourly`), written in the same ingest
transaction as the others: requests, wins, impressions and clicks, and spend in the currency
it was charged in, per hour x line item x country x device type.

Serving puts the request's country and device type on its "req" events and, through the
tracking token, on its impressions and clicks (`Event.g`); events from before that count
under "" and 0 (unknown).
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings

from reporting.measurement.models import GEO_KEY
from reporting.measurement.sources import midnight, rolled_until
from reporting.measurement.upsert import add_rows
from reporting.models import GeoDeviceDaily, GeoDeviceHourly
from reporting.stream import OWNER, hour_of, lock_order
from serving.events import Event, split_geo_device

NANOS = Decimal(1_000_000_000)
GeoKey = tuple[datetime, int, str, int, str]
COLUMNS = ("requests", "wins", "impressions", "clicks")
AMOUNTS = (*COLUMNS, "spend")


@dataclass(slots=True)
class GeoRow:
    campaign_id: int
    advertiser_id: int
    counts: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    spend_nanos: int = 0


def aggregate_geo(events: list[Event], currencies: Mapping[int, str]) -> dict[GeoKey, GeoRow]:
    """Per (hour, line item, country, device type, currency): the batch's counts and spend;
    `currencies` maps campaign ids to their currency (the platform's otherwise)."""
    platform = settings.SERVING_CURRENCY
    rows: dict[GeoKey, GeoRow] = {}
    codes: dict[str, tuple[str, int]] = {}  # a batch has thousands of events, a few codes
    for e in events:
        t = e.t
        if t not in ("req", "imp", "clk"):
            continue
        split = codes.get(e.g)
        if split is None:
            split = codes[e.g] = split_geo_device(e.g)
        country, device = split
        currency = currencies.get(e.cp, platform) if e.cp else platform
        key = (hour_of(e.ts), e.li, country, device, currency)
        row = rows.get(key)
        if row is None:
            row = rows[key] = GeoRow(e.cp, e.adv)
        if t == "req":
            row.counts[0] += 1
            if e.li or e.b:
                row.counts[1] += 1
        else:
            row.counts[2 if t == "imp" else 3] += 1
            row.spend_nanos += e.cpm
    return rows


def write_geo(rows: dict[GeoKey, GeoRow]) -> None:
    """Add the batch's rows to their hours (one statement per table); a late event for a day
    already rolled goes into its day too (as `write_demand`)."""
    done = rolled_until() if rows else None
    hours: list[tuple[Any, ...]] = []
    days: list[tuple[Any, ...]] = []
    for (hour, *key), r in lock_order(rows):
        values = (*key, r.campaign_id, r.advertiser_id, *r.counts, Decimal(r.spend_nanos) / NANOS)
        hours.append((hour, *values))
        if done is not None and hour < done:
            days.append((midnight(hour), *values))
    add_rows(GeoDeviceHourly, ("hour", *GEO_KEY), OWNER, AMOUNTS, hours)
    add_rows(GeoDeviceDaily, ("day", *GEO_KEY), OWNER, AMOUNTS, days)
