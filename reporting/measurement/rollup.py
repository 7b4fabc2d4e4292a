"""Rolling old hours of the measurement rollups into days, exactly once.

After DEMAND_HOURLY_DAYS, each UTC day's `DemandHourly` rows are summed into `DemandDaily`
(and `BuyerLatencyHourly` into `BuyerLatencyDaily`) and deleted, in one transaction per day:
a crash leaves the day either rolled or not, and a second run finds no hours left to add.
The job holds the ingest lease meanwhile, so no ingest adds to an hour it is moving; an hour
that arrives late for a day already rolled (never in practice: tokens expire within hours)
is added to that day's row on the next run.
"""

import logging
from datetime import UTC, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Max, Min, Sum
from django_redis import get_redis_connection

from reporting.lease import Lease, LeaseLost
from reporting.measurement.report import COUNTS
from reporting.models import BuyerLatencyDaily, BuyerLatencyHourly, DemandDaily, DemandHourly
from serving.keys import RedisKeys

log = logging.getLogger(__name__)

DEMAND_KEY = ("placement_id", "line_item_id", "buyer_id", "currency", "door")
AMOUNTS = (*COUNTS, "spend")
# Days rolled per run at most: a first run over a long history finishes in bounded time.
MAX_DAYS_PER_RUN = 62


def _midnight(at: datetime) -> datetime:
    return datetime.combine(at.astimezone(UTC).date(), time(0), tzinfo=UTC)


def _roll_demand(day: datetime) -> int:
    hours = DemandHourly.objects.filter(hour__gte=day, hour__lt=day + timedelta(days=1))
    sums: dict[str, Any] = {f"s_{name}": Sum(name) for name in AMOUNTS}
    grouped = hours.values(*DEMAND_KEY).annotate(
        cp=Max("campaign_id"), adv=Max("advertiser_id"), **sums
    )
    existing = {
        tuple(getattr(row, f) for f in DEMAND_KEY): row.pk
        for row in DemandDaily.objects.filter(day=day)
    }
    new = []
    for g in grouped.order_by():
        key = tuple(g[f] for f in DEMAND_KEY)
        amounts = {name: g[f"s_{name}"] or 0 for name in AMOUNTS}
        if key in existing:  # late hours of a day rolled before
            DemandDaily.objects.filter(pk=existing[key]).update(
                **{name: F(name) + n for name, n in amounts.items()}
            )
        else:
            new.append(
                DemandDaily(
                    day=day, campaign_id=g["cp"], advertiser_id=g["adv"],
                    **dict(zip(DEMAND_KEY, key, strict=True)), **amounts,
                )
            )  # fmt: skip
    DemandDaily.objects.bulk_create(new, batch_size=2000)
    deleted, _ = hours.delete()
    return deleted


def _roll_latency(day: datetime) -> None:
    hours = BuyerLatencyHourly.objects.filter(hour__gte=day, hour__lt=day + timedelta(days=1))
    for g in hours.values("buyer_id", "bucket").annotate(n=Sum("count")).order_by():
        row, _ = BuyerLatencyDaily.objects.get_or_create(
            day=day, buyer_id=g["buyer_id"], bucket=g["bucket"]
        )
        BuyerLatencyDaily.objects.filter(pk=row.pk).update(count=F("count") + g["n"])
    hours.delete()


def roll_up_days(now: datetime | None = None) -> int:
    """Move every UTC day that ended DEMAND_HOURLY_DAYS ago into the daily tables; returns
    how many hourly demand rows were rolled. Safe to run concurrently and to retry."""
    now = now or datetime.now(UTC)
    cutoff = _midnight(now - timedelta(days=settings.DEMAND_HOURLY_DAYS))
    oldest = [
        DemandHourly.objects.filter(hour__lt=cutoff).aggregate(m=Min("hour"))["m"],
        BuyerLatencyHourly.objects.filter(hour__lt=cutoff).aggregate(m=Min("hour"))["m"],
    ]
    starts = [_midnight(at) for at in oldest if at is not None]
    if not starts:
        return 0
    client = get_redis_connection("default")
    lease = Lease(
        client, RedisKeys(settings.REDIS_KEY_PREFIX).ingest_lock, settings.INGEST_LOCK_SECONDS
    )
    if not lease.acquire(wait=settings.INGEST_LOCK_SECONDS * 2):
        return 0  # ingest or another roll-up holds it: the next run carries on
    rolled = 0
    try:
        day = min(starts)
        for _ in range(MAX_DAYS_PER_RUN):
            if day >= cutoff:
                break
            with transaction.atomic():
                n = _roll_demand(day)
                _roll_latency(day)
                lease.check()  # lost it (stalled past it): roll back rather than commit
            rolled += n
            day += timedelta(days=1)
    except LeaseLost:
        log.warning("daily roll-up stopped: its lease expired; the next run carries on")
    finally:
        lease.release()
    if rolled:
        log.info("rolled %s hourly measurement rows into days before %s", rolled, cutoff)
    return rolled
