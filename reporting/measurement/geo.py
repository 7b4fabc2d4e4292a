"""The rollup by country and device type (`GeoDeviceHourly`), written in the same ingest
transaction as the others: requests, wins, impressions and clicks, and spend in the currency
it was charged in, per hour x line item x country x device type.

Serving puts the request's country and device type on its "req" events and, through the
tracking token, on its impressions and clicks (`Event.g`); events from before that count
under "" and 0 (unknown).
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings

from reporting.measurement.sources import midnight, rolled_until
from reporting.measurement.upsert import add_rows
from reporting.models import GeoDeviceDaily, GeoDeviceHourly
from reporting.stream import lock_order
from serving.events import Event, split_geo_device

NANOS = Decimal(1_000_000_000)
GeoKey = tuple[datetime, int, str, int, str]
COLUMNS = ("requests", "wins", "impressions", "clicks")


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
    for e in events:
        t = e.t
        if t not in ("req", "imp", "clk"):
            continue
        country, device = split_geo_device(e.g)
        currency = currencies.get(e.cp, platform) if e.cp else platform
        key = (datetime.fromtimestamp(e.ts // 3_600_000 * 3600, UTC), e.li, country, device,
               currency)  # fmt: skip
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
    tiers: dict[Any, list[Any]] = {GeoDeviceHourly: [], GeoDeviceDaily: []}
    for (hour, line_item_id, country, device, currency), r in lock_order(rows):
        key = {"line_item_id": line_item_id, "country": country, "device_type": device,
               "currency": currency}  # fmt: skip
        owner = {"campaign_id": r.campaign_id, "advertiser_id": r.advertiser_id}
        amounts: dict[str, Any] = dict(zip(COLUMNS, r.counts, strict=True))
        amounts["spend"] = Decimal(r.spend_nanos) / NANOS
        tiers[GeoDeviceHourly].append(({"hour": hour, **key}, owner, amounts))
        if done is not None and hour < done:
            tiers[GeoDeviceDaily].append(({"day": midnight(hour), **key}, owner, amounts))
    for model, batch in tiers.items():
        add_rows(model, batch)
