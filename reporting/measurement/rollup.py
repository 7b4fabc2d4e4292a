"""Summing closed UTC days of the measurement rollups into daily rows, exactly once, and
pruning the hours after DEMAND_HOURLY_DAYS.

A day is closed DEMAND_DAY_CLOSE_HOURS after its end (tracking tokens expire within
SERVING_TOKEN_TTL_SECONDS, so by then its events are in). Each closed day is summed from
`DemandHourly` into `DemandDaily` (and `BuyerLatencyHourly` into `BuyerLatencyDaily`) with
its `RolledDay` mark, in one transaction, oldest first: a crash leaves the day either rolled
or not, and a second run skips it. The job holds the ingest lease meanwhile, so no ingest
adds to a day while it is summed; an event that still arrives for a rolled day is added to
its hour and to its day by ingest (`reporting.demand`). Hours of rolled days older than
DEMAND_HOURLY_DAYS are then deleted: reports read whole days from the daily rows.
"""

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Min, Sum
from django_redis import get_redis_connection

from reporting.lease import Lease, LeaseLost
from reporting.measurement.models import GEO_KEY
from reporting.measurement.report import COUNTS
from reporting.measurement.sources import (
    midnight,
    month_start,
    months_rolled_until,
    next_month,
    rolled_until,
)
from reporting.models import (
    BuyerLatencyDaily,
    BuyerLatencyHourly,
    DemandDaily,
    DemandHourly,
    DemandMonthly,
    GeoDeviceDaily,
    GeoDeviceHourly,
    RolledDay,
    RolledMonth,
)
from reporting.stream import partition_suffix, partitions
from serving.keys import RedisKeys

log = logging.getLogger(__name__)

DEMAND_KEY = ("placement_id", "line_item_id", "buyer_id", "currency", "door")
AMOUNTS = (*COUNTS, "spend")
GEO_AMOUNTS = ("requests", "wins", "impressions", "clicks", "spend")
# Days rolled per run at most: a first run over a long history finishes in bounded time.
MAX_DAYS_PER_RUN = 62


def _sum_demand(day: datetime) -> int:
    hours = DemandHourly.objects.filter(hour__gte=day, hour__lt=day + timedelta(days=1))
    return _sum_into(hours, DemandDaily, {"day": day})


def _sum_into(source: Any, model: Any, at: dict[str, datetime]) -> int:
    """Sum `source`'s rows per key into new `model` rows at `at`; how many."""
    sums: dict[str, Any] = {f"s_{name}": Sum(name) for name in AMOUNTS}
    grouped = source.values(*DEMAND_KEY).annotate(
        cp=Max("campaign_id"), adv=Max("advertiser_id"), **sums
    )
    rows = []
    for g in grouped.order_by():
        amounts = {name: g[f"s_{name}"] or 0 for name in AMOUNTS}
        key = {f: g[f] for f in DEMAND_KEY}
        owner = {"campaign_id": g["cp"], "advertiser_id": g["adv"]}
        rows.append(model(**at, **owner, **key, **amounts))
    model.objects.bulk_create(rows, batch_size=2000)
    return len(rows)


def _first_month_to_roll() -> datetime | None:
    done = months_rolled_until()
    if done is not None:
        return done
    oldest = RolledDay.objects.aggregate(m=Min("day"))["m"]
    return None if oldest is None else month_start(oldest)


def _roll_months(leases: list[Lease]) -> int:
    """Sum every month whose days are all rolled into `DemandMonthly`, oldest first, each
    with its mark in one transaction; daily rows written."""
    days_done = rolled_until()
    month = _first_month_to_roll()
    written = 0
    while month is not None and days_done is not None and next_month(month) <= days_done:
        end = next_month(month)
        with transaction.atomic():
            days = DemandDaily.objects.filter(day__gte=month, day__lt=end)
            written += _sum_into(days, DemandMonthly, {"month": month})
            RolledMonth.objects.create(month=month)
            for lease in leases:
                lease.check()
        month = end
    return written


def _sum_geo(day: datetime) -> None:
    hours = GeoDeviceHourly.objects.filter(hour__gte=day, hour__lt=day + timedelta(days=1))
    grouped = hours.values(*GEO_KEY).annotate(
        cp=Max("campaign_id"), adv=Max("advertiser_id"),
        **{f"s_{name}": Sum(name) for name in GEO_AMOUNTS},
    )  # fmt: skip
    rows = []
    for g in grouped.order_by():
        key = {f: g[f] for f in GEO_KEY}
        amounts = {name: g[f"s_{name}"] or 0 for name in GEO_AMOUNTS}
        rows.append(
            GeoDeviceDaily(day=day, campaign_id=g["cp"], advertiser_id=g["adv"], **key, **amounts)
        )
    GeoDeviceDaily.objects.bulk_create(rows, batch_size=2000)


def _sum_latency(day: datetime) -> None:
    hours = BuyerLatencyHourly.objects.filter(hour__gte=day, hour__lt=day + timedelta(days=1))
    BuyerLatencyDaily.objects.bulk_create(
        BuyerLatencyDaily(day=day, buyer_id=g["buyer_id"], bucket=g["bucket"], count=g["n"])
        for g in hours.values("buyer_id", "bucket").annotate(n=Sum("count")).order_by()
    )


def _first_day_to_roll() -> datetime | None:
    done = rolled_until()
    if done is not None:
        return done
    oldest = [
        DemandHourly.objects.aggregate(m=Min("hour"))["m"],
        BuyerLatencyHourly.objects.aggregate(m=Min("hour"))["m"],
        GeoDeviceHourly.objects.aggregate(m=Min("hour"))["m"],
    ]
    starts = [midnight(at) for at in oldest if at is not None]
    return min(starts) if starts else None


def _prune(before: datetime) -> int:
    """Delete the hours of rolled days before `before` (they are in the daily rows)."""
    done = rolled_until()
    if done is None:
        return 0
    end = min(before, done)
    deleted, _ = DemandHourly.objects.filter(hour__lt=end).delete()
    BuyerLatencyHourly.objects.filter(hour__lt=end).delete()
    GeoDeviceHourly.objects.filter(hour__lt=end).delete()
    return deleted


def roll_up_days(now: datetime | None = None) -> tuple[int, int]:
    """Roll every closed day not rolled yet and every month whose days all are, then prune
    hours past DEMAND_HOURLY_DAYS; (daily rows written, hourly rows deleted). Safe to run
    concurrently and to retry."""
    now = now or datetime.now(UTC)
    closed = midnight(now - timedelta(hours=settings.DEMAND_DAY_CLOSE_HOURS))
    day = _first_day_to_roll()
    month = _first_month_to_roll()
    days_done = rolled_until()
    months_due = month is not None and days_done is not None and next_month(month) <= days_done
    if (day is None or day >= closed) and not months_due:
        return 0, _prune(midnight(now - timedelta(days=settings.DEMAND_HOURLY_DAYS)))
    client = get_redis_connection("default")
    keys = RedisKeys(settings.REDIS_KEY_PREFIX)
    # Every partition's ingestion lease, in partition order: no partition's ingestion may
    # commit hours of a day while it is summed (a late event goes to its day too only when
    # the day is marked rolled before its transaction reads the mark).
    leases: list[Lease] = []
    for stream in partitions(client, keys):
        lease = Lease(client, keys.ingest_lock + partition_suffix(stream, keys),
                      settings.INGEST_LOCK_SECONDS)  # fmt: skip
        if not lease.acquire(wait=settings.INGEST_LOCK_SECONDS * 2):
            for held in leases:
                held.release()
            return 0, 0  # ingest or another roll-up holds it: the next run carries on
        leases.append(lease)
    written = months = 0
    try:
        day = _first_day_to_roll()  # again, under the lease: another run may have rolled
        for _ in range(MAX_DAYS_PER_RUN):
            if day is None or day >= closed:
                break
            with transaction.atomic():
                written += _sum_demand(day)
                _sum_geo(day)
                _sum_latency(day)
                RolledDay.objects.create(day=day)
                for lease in leases:
                    lease.check()  # lost it (stalled past it): roll back rather than commit
            day += timedelta(days=1)
        months = _roll_months(leases)
    except LeaseLost:
        log.warning("daily roll-up stopped: its lease expired; the next run carries on")
    finally:
        for lease in leases:
            lease.release()
    pruned = _prune(midnight(now - timedelta(days=settings.DEMAND_HOURLY_DAYS)))
    if written or months or pruned:
        log.info(
            "measurement roll-up: %s daily and %s monthly rows written, %s hours pruned",
            written, months, pruned,
        )  # fmt: skip
    return written, pruned
