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

from django.conf import settings
from django.db.models import F

from reporting.measurement.sources import midnight, rolled_until
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
    # A late event for a day already rolled goes into its day too (as `write_demand`).
    done = rolled_until() if rows else None
    for (hour, line_item_id, country, device, currency), r in lock_order(rows):
        key = {"line_item_id": line_item_id, "country": country, "device_type": device,
               "currency": currency}  # fmt: skip
        owner = {"campaign_id": r.campaign_id, "advertiser_id": r.advertiser_id}
        pairs = zip(COLUMNS, r.counts, strict=True)
        updates: dict[str, object] = {c: F(c) + n for c, n in pairs if n}
        if r.spend_nanos:
            updates["spend"] = F("spend") + Decimal(r.spend_nanos) / NANOS
        tables: list[tuple[type[GeoDeviceHourly] | type[GeoDeviceDaily], dict[str, datetime]]]
        tables = [(GeoDeviceHourly, {"hour": hour})]
        if done is not None and hour < done:
            tables.append((GeoDeviceDaily, {"day": midnight(hour)}))
        for model, at in tables:
            row, _ = model.objects.get_or_create(**at, **key, defaults=owner)
            if updates:
                model.objects.filter(pk=row.pk).update(**updates)
