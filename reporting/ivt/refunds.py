"""Refunds: staff invalidating billed impressions and clicks after the fact.

A refund names a placement or a pseudonymous id and a time window. Its job moves what was
billed in that window from the delivery rollup (`HourlyRollup`: impressions, clicks, spend)
and the demand rollup (`DemandHourly`, and `DemandDaily` once the day is rolled up) to the
invalid-traffic rollup under the reason "refund", takes the spend off the campaigns'
real-time counters in Redis (day and lifetime, so pacing and budgets see it), and records
an audit entry per advertiser touched; all in one transaction with the refund's status, so
a retried job finds it done and moves nothing twice.

- A placement's refund works on whole hours (the rollups' grain): the window is widened to
  the hours it touches.
- A pseudonym's refund reads the raw events (kept RAW_EVENT_RETENTION_SECONDS) of that id in
  the window, to the millisecond; it waits until ingestion has rolled the window up.
"""

import logging
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_redis import get_redis_connection
from redis import Redis

from campaigns.audit import record
from campaigns.models import Advertiser, AuditAction, Campaign
from reporting.ivt.models import IvtReason, IvtRefund, RefundScope, RefundStatus
from reporting.ivt.rollup import NANOS
from reporting.ivt.unbill import Bucket, Moved, count, take_back
from reporting.models import HourlyRollup, StreamWatermark
from serving.events import Event, decode_events
from serving.keys import RedisKeys, local_day
from serving.spend import DAY_TTL_SECONDS

log = logging.getLogger(__name__)

SCAN_BATCH = 2000


# A held pseudonym's refund (`refund_held`): its note, and the window before the hold it
# covers (the longest rate window: what the id did in the hour it passed its limits in).
AUTOMATIC = "automatic:"
HELD_WINDOW = timedelta(hours=1)
HELD_BATCH = 500


class NotRolledUpYet(Exception):
    """The window is not all rolled up: the refund waits (its task retries)."""


def _hour_floor(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _placement_buckets(refund: IvtRefund) -> dict[Bucket, Moved]:
    """Everything billed on the placement in the hours the window touches."""
    start, end = _hour_floor(refund.start), refund.end
    rows = HourlyRollup.objects.select_for_update().filter(
        placement_id=refund.placement_id or 0, hour__gte=start, hour__lt=end, line_item_id__gt=0
    )
    return {
        (r.hour, r.placement_id, r.line_item_id): Moved(
            r.campaign_id, r.advertiser_id, r.impressions, r.clicks, r.spend
        )
        for r in rows
    }


def _rolled_up_to(client: Redis, stream: str) -> int:
    mark = StreamWatermark.objects.filter(stream=stream).values_list("last_id", flat=True).first()
    return int(mark.partition("-")[0]) if mark else 0


def _events_in(client: Redis, stream: str, start_ms: int, end_ms: int) -> Iterator[Any]:
    low = f"{start_ms}-0"
    while True:
        batch: Any = client.xrange(stream, min=low, max=f"({end_ms}-0", count=SCAN_BATCH)
        if not batch:
            return
        for _, fields in batch:
            if fields and b"v" in fields:
                yield from decode_events(fields[b"v"])
        low = f"({batch[-1][0].decode()}"


def _pseudonym_buckets(refund: IvtRefund, client: Redis, keys: RedisKeys) -> dict[Bucket, Moved]:
    """The pseudonym's billed impressions and clicks in the window, from the raw events."""
    start_ms = int(refund.start.timestamp() * 1000)
    end_ms = int(refund.end.timestamp() * 1000)
    rolled = _rolled_up_to(client, keys.events)
    if rolled < end_ms:
        raise NotRolledUpYet(f"ingestion has not rolled up to {refund.end.isoformat()} yet")
    billed: dict[str, Event] = {}
    taken_back: set[str] = set()
    # An impression taken back later (pixel stuffing: its `ivi` comes with its beacon, within
    # the token's lifetime) is not billed any more: not refunded twice.
    later = min(rolled, end_ms + settings.SERVING_TOKEN_TTL_SECONDS * 1000)
    for e in _events_in(client, keys.events, start_ms, later):
        if e.u != refund.pseudonym:
            continue
        if e.t == "ivi":
            taken_back.add(e.d)
        elif e.t in ("imp", "clk") and e.ts < end_ms and not e.iv and not e.tt and e.li:
            billed[f"{e.t}:{e.d}"] = e
    buckets: dict[Bucket, Moved] = {}
    for e in billed.values():
        if e.t == "imp" and e.d in taken_back:
            continue
        hour = datetime.fromtimestamp(e.ts // 3_600_000 * 3600, UTC)
        count(buckets.setdefault((hour, e.pl, e.li), Moved(e.cp, e.adv)), e)
    return buckets


def _reconcile_spend(client: Redis, keys: RedisKeys, moved: dict[Bucket, Moved]) -> None:
    """Take the refunded spend off the real-time counters (day in the campaign's zone)."""
    zones = dict(
        Campaign.objects.filter(pk__in={m.campaign_id for m in moved.values()}).values_list(
            "pk", "advertiser__time_zone"
        )
    )
    pipe = client.pipeline(transaction=False)
    for (hour, _, line_item_id), m in moved.items():
        nanos = int(m.spend * NANOS)
        if not nanos:
            continue
        day = local_day(hour.timestamp(), zones.get(m.campaign_id, "UTC"))
        for key in (keys.spend(day, m.campaign_id), keys.lifetime_spend(m.campaign_id)):
            pipe.hincrby(key, "s", -nanos)
            pipe.hincrby(key, f"s:{line_item_id}", -nanos)
        pipe.expire(keys.spend(day, m.campaign_id), DAY_TTL_SECONDS)
    pipe.execute()


def refund(refund_id: int) -> IvtRefund | None:
    """Run one refund (idempotent: a done refund is left as it is)."""
    client: Redis = get_redis_connection("default")
    keys = RedisKeys(settings.REDIS_KEY_PREFIX)
    with transaction.atomic():
        row = IvtRefund.objects.select_for_update().filter(pk=refund_id).first()
        if row is None or row.status != RefundStatus.PENDING:
            return row
        if row.scope == RefundScope.PLACEMENT:
            wanted = _placement_buckets(row)
        else:
            wanted = _pseudonym_buckets(row, client, keys)
        moved = {bucket: take_back(bucket, w, IvtReason.REFUND) for bucket, w in wanted.items()}
        per_advertiser: dict[int, list[int | str]] = defaultdict(lambda: [0, 0, "0"])
        for m in moved.values():
            totals = per_advertiser[m.advertiser_id]
            totals[0] = int(totals[0]) + m.impressions
            totals[1] = int(totals[1]) + m.clicks
            totals[2] = str(Decimal(totals[2]) + m.spend)
        row.impressions = sum(m.impressions for m in moved.values())
        row.clicks = sum(m.clicks for m in moved.values())
        row.refunded = sum((m.spend for m in moved.values()), Decimal(0))
        row.status, row.done_at = RefundStatus.DONE, timezone.now()
        if row.note.startswith(AUTOMATIC):
            row.pseudonym = ""  # it was needed to find the events; no longer kept
        row.save()
        for advertiser in Advertiser.objects.filter(pk__in=list(per_advertiser)):
            imps, clicks, spend = per_advertiser[advertiser.pk]
            record(
                row, AuditAction.STATUS, advertiser=advertiser, by=row.requested_by,
                changes={"refunded": [None, {"impressions": imps, "clicks": clicks,
                                             "spend": spend}]},
            )  # fmt: skip
        transaction.on_commit(lambda: _reconcile_spend(client, keys, moved))
    log.info("refund %s: %s impressions, %s clicks, %s", row.pk, row.impressions, row.clicks,
             row.refunded)  # fmt: skip
    return row


def refund_held() -> list[int]:
    """A refund for each pseudonym serving newly held (`serving.ivt.judge`, id_hold_seconds):
    what it was billed in the hour before it passed its limits, when it looked like anyone.
    The ids of the refunds made; each runs like a staff one (once ingestion has caught up)."""
    client: Redis = get_redis_connection("default")
    keys = RedisKeys(settings.REDIS_KEY_PREFIX)
    held: Any = client.zrange(keys.ivt_held, 0, HELD_BATCH - 1, withscores=True)
    made: list[int] = []
    with transaction.atomic():
        for member, score in held:
            end = datetime.fromtimestamp(score / 1000, UTC)
            pseudonym = member.decode()
            # Made already (this job was cut off before it forgot the id; a done one has
            # forgotten its pseudonym, so one of the same instant counts too: rather a refund
            # missed than the same events refunded twice).
            if IvtRefund.objects.filter(
                scope=RefundScope.PSEUDONYM, pseudonym__in=[pseudonym, ""], end=end,
                note__startswith=AUTOMATIC,
            ).exists():  # fmt: skip
                continue
            row = IvtRefund.objects.create(
                scope=RefundScope.PSEUDONYM, pseudonym=pseudonym, start=end - HELD_WINDOW,
                end=end, note=f"{AUTOMATIC} held over its rate limits",
            )  # fmt: skip
            made.append(row.pk)
        if held:
            members = [member for member, _ in held]
            transaction.on_commit(lambda: client.zrem(keys.ivt_held, *members))
    return made
