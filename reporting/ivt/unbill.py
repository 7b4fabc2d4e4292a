"""Billed impressions and clicks moved to invalid after the fact: by a staff refund
(`reporting.ivt.refunds`) or by serving's later judgement (an `ivi` event: pixel stuffing,
`serving.ivt.stuffing`). Each takes what was billed out of the delivery rollup
(`HourlyRollup`), the demand rollup (`DemandHourly`, and `DemandDaily` once the day is
rolled up) and, where the events are known one by one (a pseudonym's, a taken-back
impression), the rollup by country and device type (`GeoDeviceHourly`/`Daily`) and the
creative breakdown (`CreativeHourly`), and adds it to the invalid-traffic rollup with its
reason.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import F

from reporting.ivt.rollup import NANOS, IvtCounts, add_ivt
from reporting.measurement.sources import midnight, month_start, months_rolled_until, rolled_until
from reporting.models import (
    CreativeHourly,
    DemandDaily,
    DemandHourly,
    DemandMonthly,
    GeoDeviceDaily,
    GeoDeviceHourly,
    HourlyRollup,
)
from reporting.stream import hour_of, lock_order
from serving.events import Event, split_geo_device

Bucket = tuple[datetime, int, int]  # hour, placement, line item


@dataclass(slots=True)
class Moved:
    """What a bucket gives up: counts and spend (in its campaign's currency)."""

    campaign_id: int
    advertiser_id: int
    impressions: int = 0
    clicks: int = 0
    spend: Decimal = Decimal(0)
    # Events' counts per door, for the demand rollup's rows (empty: every door's row), and
    # per country and device type (`Event.g`), for the geo rollup's (empty: not moved there,
    # its rows have no placement).
    doors: dict[str, list[Any]] = field(default_factory=dict)
    geos: dict[str, list[Any]] = field(default_factory=dict)
    creatives: dict[int, list[Any]] = field(default_factory=dict)  # likewise, per creative


def count(moved: Moved, e: Event) -> None:
    """Add one billed impression or click to what is to move, per door."""
    n = 1 if e.t == "clk" else 0
    if n:
        moved.clicks += 1
    else:
        moved.impressions += 1
    moved.spend += Decimal(e.cpm) / NANOS
    for part in (moved.doors.setdefault(e.dr[:8], [0, 0, Decimal(0)]),
                 moved.geos.setdefault(e.g, [0, 0, Decimal(0)]),
                 moved.creatives.setdefault(e.cr, [0, 0, Decimal(0)])):  # fmt: skip
        part[n] += 1
        part[2] += Decimal(e.cpm) / NANOS


def write_invalidations(events: Iterable[Event]) -> None:
    """Ingestion's part: serving's `ivi` events (a billed impression judged invalid later)
    move their impressions; written after the batch's billed rows, which may hold them."""
    wanted: dict[tuple[datetime, int, int, str], Moved] = {}
    for e in events:
        if e.t == "ivi" and e.li and e.iv:
            moved = wanted.setdefault((hour_of(e.ts), e.pl, e.li, e.iv), Moved(e.cp, e.adv))
            count(moved, e)  # an impression
    for (hour, placement_id, line_item_id, reason), w in lock_order(wanted):
        take_back((hour, placement_id, line_item_id), w, reason)


def take_back(bucket: Bucket, wanted: Moved, reason: str) -> Moved:
    """Move up to `wanted` out of the bucket's delivery and demand rows into the invalid
    rollup under `reason` (inside the caller's transaction); what was moved."""
    hour, placement_id, line_item_id = bucket
    row = (
        HourlyRollup.objects.select_for_update()
        .filter(hour=hour, placement_id=placement_id, line_item_id=line_item_id)
        .first()
    )
    if row is None:
        return Moved(wanted.campaign_id, wanted.advertiser_id)
    moved = Moved(
        row.campaign_id,
        row.advertiser_id,
        min(row.impressions, wanted.impressions),
        min(row.clicks, wanted.clicks),
        min(row.spend, wanted.spend),
    )
    HourlyRollup.objects.filter(pk=row.pk).update(
        impressions=F("impressions") - moved.impressions,
        clicks=F("clicks") - moved.clicks,
        spend=F("spend") - moved.spend,
    )
    counts = IvtCounts(
        campaign_id=row.campaign_id,
        advertiser_id=row.advertiser_id,
        impressions=moved.impressions,
        clicks=moved.clicks,
        withheld_nanos=int(moved.spend * NANOS),
    )
    add_ivt((hour, placement_id, line_item_id, reason), counts)
    _take_demand(bucket, moved, wanted.doors)
    _take_geo(hour, line_item_id, wanted.geos)
    _take_creatives(hour, line_item_id, wanted.creatives)
    return moved


def _take_creatives(hour: datetime, line_item_id: int, creatives: dict[int, list[Any]]) -> None:
    """Move the events' counts out of the creative breakdown's rows (`CreativeHourly`)."""
    for creative_id, (imps, clicks, spend) in sorted(creatives.items()):
        row = (
            CreativeHourly.objects.select_for_update()
            .filter(hour=hour, line_item_id=line_item_id, creative_id=creative_id)
            .first()
        )
        if row is not None:
            CreativeHourly.objects.filter(pk=row.pk).update(
                impressions=F("impressions") - min(row.impressions, imps),
                clicks=F("clicks") - min(row.clicks, clicks),
                spend=F("spend") - min(row.spend, spend),
            )


def _take_geo(hour: datetime, line_item_id: int, geos: dict[str, list[Any]]) -> None:
    """Move the events' counts out of the geo rollup's rows (`GeoDeviceHourly`, and its day
    once rolled up) of their country and device type."""
    tables: list[tuple[Any, dict[str, Any]]] = [(GeoDeviceHourly, {"hour": hour})]
    done = rolled_until() if geos else None
    if done is not None and hour < done:
        tables.append((GeoDeviceDaily, {"day": midnight(hour)}))
    for code, (imps, clicks, spend) in sorted(geos.items()):
        country, device = split_geo_device(code)
        for model, when in tables:
            row = (
                model.objects.select_for_update()
                .filter(**when, line_item_id=line_item_id, country=country, device_type=device)
                .first()
            )
            if row is None:
                continue
            model.objects.filter(pk=row.pk).update(
                impressions=F("impressions") - min(row.impressions, imps),
                clicks=F("clicks") - min(row.clicks, clicks),
                spend=F("spend") - min(row.spend, spend),
            )


def _take_demand(bucket: Bucket, moved: Moved, doors: dict[str, list[Any]]) -> None:
    """Move the same out of the demand rollup (our line items' rows: buyer 0), its hour and,
    once that day (and month) is rolled up, its day (and month), so that the measurement
    reports agree."""
    hour, placement_id, line_item_id = bucket
    at = {"placement_id": placement_id, "line_item_id": line_item_id, "buyer_id": 0}
    tables: list[tuple[Any, dict[str, Any]]] = [(DemandHourly, {"hour": hour})]
    done = rolled_until()
    if done is not None and hour < done:
        tables.append((DemandDaily, {"day": midnight(hour)}))
        months_done = months_rolled_until()
        if months_done is not None and hour < months_done:
            tables.append((DemandMonthly, {"month": month_start(hour)}))
    for model, when in tables:
        rows = list(model.objects.select_for_update().filter(**when, **at).order_by("pk"))
        # Per door as the pseudonym's events say, then whatever is left from any door's row.
        left = [moved.impressions, moved.clicks, moved.spend]
        for row in sorted(rows, key=lambda r: r.door not in doors):
            wants = doors.get(row.door, left) if doors else left
            take = [min(row.impressions, wants[0], left[0]), min(row.clicks, wants[1], left[1]),
                    min(row.spend, wants[2], left[2])]  # fmt: skip
            if not any(take):
                continue
            left = [have - took for have, took in zip(left, take, strict=True)]
            model.objects.filter(pk=row.pk).update(
                impressions=F("impressions") - take[0],
                clicks=F("clicks") - take[1],
                spend=F("spend") - take[2],
            )
