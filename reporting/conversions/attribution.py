"""Attributing conversions to decisions, from the event stream, exactly once.

A consumer of its own (group `conversions`, watermark `<stream>|conversions`, its own lease)
reads every entry and does three things, in stream order within a batch:

1. A filled slot's `req` that carries a pseudonym (consent allowed ids and personalisation)
   for a campaign with a post-view window: the decision's pseudonym is kept in Redis
   (`conv:dec:<decision>`) until its impression can no longer be recorded.
2. An `imp` of such a decision: the pseudonym's latest view of that campaign is set
   (`conv:view:<pseudonym>`, one field per campaign; kept MAX_POST_VIEW_DAYS).
3. A `conv` (the pixel's or the postback's, `serving.conversions`): last touch. A click id
   within its campaign's post-click window wins; otherwise the latest view among the
   advertiser's campaigns whose post-view window holds the conversion; otherwise nothing.
   One row per conversion, except that an order id counts once per advertiser.

The rows and the watermark commit in one transaction, and the entries are acknowledged after
it; the Redis writes are idempotent, so a batch read again after a crash writes the same. The
attributed conversions are written to the telemetry files (`reporting.telemetry.conversions`)
inside that transaction, under names a batch read again writes again (replaced, not added to).
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec
from django.conf import settings
from django_redis import get_redis_connection
from redis import Redis

from campaigns.fx.services import current_fx_table
from campaigns.models import Advertiser, Campaign
from campaigns.models.core import MAX_POST_VIEW_DAYS
from reporting.conversions.models import Attribution, Conversion
from reporting.models import StreamWatermark
from reporting.stream import Entry, Reader, consume, partition_suffix, partitions
from reporting.telemetry.conversions import write_conversions
from serving.conversions import ConversionDetail, decode_detail
from serving.events import Event
from serving.keys import RedisKeys

log = logging.getLogger(__name__)

GROUP = "conversions"
CONSUMER = "conversions-1"
DAY_MS = 86_400_000
VALUE_PLACES = Decimal("0.000001")


@dataclass
class AttributionResult:
    read: int = 0
    conversions: int = 0  # rows written
    attributed: int = 0
    duplicates: int = 0  # order ids seen before for the advertiser
    dropped: int = 0  # unknown advertiser or malformed
    views: int = 0  # post-view touches recorded


@dataclass(frozen=True)
class Windows:
    advertiser_id: int
    currency: str
    post_click_ms: int
    post_view_ms: int


@dataclass(frozen=True)
class Touch:
    kind: Attribution
    decision_id: str
    campaign_id: int
    line_item_id: int
    creative_id: int
    placement_id: int
    at_ms: int


def decision_key(keys: RedisKeys, decision_id: str) -> str:
    """A decision's pseudonym, until its impression can no longer be recorded."""
    return f"{keys.prefix}conv:dec:{decision_id}"


def views_key(keys: RedisKeys, pseudonym: str) -> str:
    """A pseudonym's latest view per campaign: `<ts ms>|<li>|<creative>|<placement>|<decision>|
    <advertiser>` under the campaign id."""
    return f"{keys.prefix}conv:view:{pseudonym}"


def lease_name(keys: RedisKeys, stream: str) -> str:
    """The attribution lease of one partition of the stream."""
    return f"{keys.ingest_lock}{partition_suffix(stream, keys)}:{GROUP}"


def watermark_name(stream: str) -> str:
    return f"{stream}|{GROUP}"


def floor(stream: str) -> str | None:
    """The last entry attributed, once the consumer has started: raw events after it must
    not be trimmed."""
    mark: str | None = (
        StreamWatermark.objects.filter(stream=watermark_name(stream))
        .values_list("last_id", flat=True)
        .first()
    )
    return mark


class _Campaigns:
    """Attribution windows of the campaigns a batch names: one query per new set of ids."""

    def __init__(self) -> None:
        self._known: dict[int, Windows | None] = {}

    def load(self, ids: Iterable[int]) -> None:
        wanted = {i for i in ids if i and i not in self._known}
        if not wanted:
            return
        rows = Campaign.objects.filter(pk__in=wanted).values_list(
            "pk", "advertiser_id", "currency", "post_click_days", "post_view_days"
        )
        for pk, adv, currency, click_days, view_days in rows:
            self._known[pk] = Windows(adv, currency, click_days * DAY_MS, view_days * DAY_MS)
        for pk in wanted - set(self._known):
            self._known[pk] = None

    def get(self, campaign_id: int) -> Windows | None:
        return self._known.get(campaign_id)


def _record_views(
    client: Redis, keys: RedisKeys, entries: list[Entry], campaigns: _Campaigns
) -> int:
    """Steps 1 and 2 of the module docstring; returns the views recorded."""
    slots = [
        (e, events[0].u)
        for _, events in entries
        if events and events[0].u
        for e in events
        if e.t == "req" and e.li and e.d
    ]
    imps = [e for _, events in entries for e in events if e.t == "imp" and e.d and not e.tt]
    campaigns.load([e.cp for e, _ in slots])
    ttl = settings.SERVING_TOKEN_TTL_SECONDS + 3600
    pipe = client.pipeline(transaction=False)
    for e, pseudonym in slots:
        windows = campaigns.get(e.cp)
        if windows is not None and windows.post_view_ms:
            pipe.set(decision_key(keys, e.d), pseudonym, ex=ttl)
    pipe.execute()
    if not imps:
        return 0
    owners: list[Any] = client.mget([decision_key(keys, e.d) for e in imps])
    pipe = client.pipeline(transaction=False)
    views = 0
    for e, owner in zip(imps, owners, strict=True):
        if owner:
            key = views_key(keys, owner.decode())
            pipe.hset(key, str(e.cp), f"{e.ts}|{e.li}|{e.cr}|{e.pl}|{e.d}|{e.adv}")
            pipe.expire(key, MAX_POST_VIEW_DAYS * 86400)
            views += 1
    pipe.execute()
    return views


def _parse_view(campaign: bytes, value: bytes) -> tuple[int, Touch, int] | None:
    try:
        ts, li, cr, pl, decision, adv = value.decode().split("|")
        touch = Touch(Attribution.VIEW, decision, int(campaign), int(li), int(cr), int(pl), int(ts))
        return int(adv), touch, int(ts)
    except ValueError:
        return None


def _last_view(views: dict[bytes, bytes], e: Event, campaigns: _Campaigns) -> Touch | None:
    best: Touch | None = None
    for campaign, value in views.items():
        parsed = _parse_view(campaign, value)
        if parsed is None:
            continue
        adv, touch, ts = parsed
        windows = campaigns.get(touch.campaign_id)
        if adv != e.adv or windows is None or windows.advertiser_id != e.adv:
            continue
        if ts <= e.ts <= ts + windows.post_view_ms and (best is None or ts > best.at_ms):
            best = touch
    return best


def _click(e: Event, detail: ConversionDetail, campaigns: _Campaigns) -> Touch | None:
    windows = campaigns.get(e.cp)
    if not e.d or windows is None or windows.advertiser_id != e.adv:
        return None
    clicked_ms = detail.clicked_at * 1000
    if clicked_ms <= e.ts <= clicked_ms + windows.post_click_ms:
        return Touch(Attribution.CLICK, e.d, e.cp, e.li, e.cr, e.pl, clicked_ms)
    return None


def _converted(value: Decimal | None, currency: str, windows: Windows | None, rates: Any) -> Any:
    """The value in the campaign's currency at today's rates, or None."""
    if value is None or windows is None:
        return None
    if currency == windows.currency:
        return value
    have, want = rates.get(currency), rates.get(windows.currency)
    if not have or not want:
        return None
    return (value * have / want).quantize(VALUE_PLACES)


def _ms(ts: int) -> datetime:
    return datetime.fromtimestamp(ts / 1000, UTC)


def _attribute(
    client: Redis, keys: RedisKeys, entries: list[Entry], campaigns: _Campaigns,
    result: AttributionResult,
) -> None:  # fmt: skip
    """Step 3: the batch's conversions as rows (order ids counted once per advertiser)."""
    convs: list[tuple[str, Event, ConversionDetail]] = []
    for eid, events in entries:
        for e in events:
            if e.t != "conv":
                continue
            try:
                convs.append((eid, e, decode_detail(e.x)))
            except msgspec.DecodeError:
                log.error("conversions: malformed conversion %s: %r", eid, e.x[:200])
                result.dropped += 1
    if not convs:
        return
    known = set(
        Advertiser.objects.filter(pk__in={e.adv for _, e, _ in convs}).values_list("pk", flat=True)
    )
    kept = [c for c in convs if c[1].adv in known]
    result.dropped += len(convs) - len(kept)
    with_id = [e.u for _, e, _ in kept if e.u]
    pipe = client.pipeline(transaction=False)
    for pseudonym in with_id:
        pipe.hgetall(views_key(keys, pseudonym))
    views = dict(zip(with_id, pipe.execute(), strict=True))
    campaigns.load([e.cp for _, e, _ in kept])
    campaigns.load(int(c) for found in views.values() for c in found)
    orders = {(e.adv, d.order_id) for _, e, d in kept if d.order_id}
    taken = set(
        Conversion.objects.filter(
            advertiser_id__in={a for a, _ in orders}, order_id__in={o for _, o in orders}
        ).values_list("advertiser_id", "order_id")
    )
    rates = current_fx_table().rates if any(d.value for _, _, d in kept) else {}
    rows: list[Conversion] = []
    currencies: list[str] = []
    for eid, e, d in kept:
        if d.order_id:
            if (e.adv, d.order_id) in taken:
                result.duplicates += 1
                continue
            taken.add((e.adv, d.order_id))
        touch = _click(e, d, campaigns) or (
            _last_view(views.get(e.u) or {}, e, campaigns) if e.u else None
        )
        value = Decimal(d.value) if d.value else None
        windows = campaigns.get(touch.campaign_id) if touch else None
        rows.append(
            Conversion(
                advertiser_id=e.adv, event=e.r, value=value, currency=d.currency,
                order_id=d.order_id, converted_at=_ms(e.ts), source=d.source,
                attribution=touch.kind if touch else Attribution.NONE,
                decision_id=touch.decision_id if touch else "",
                campaign_id=touch.campaign_id if touch else 0,
                line_item_id=touch.line_item_id if touch else 0,
                creative_id=touch.creative_id if touch else 0,
                placement_id=touch.placement_id if touch else 0,
                touched_at=_ms(touch.at_ms) if touch else None,
                attributed_value=_converted(value, d.currency, windows, rates),
                pseudonym=e.u, stream_id=eid,
            )
        )  # fmt: skip
        currencies.append(windows.currency if windows else "")
        result.attributed += touch is not None
    Conversion.objects.bulk_create(rows, batch_size=1000)
    result.conversions += len(rows)
    # The attributed ones into the telemetry files, in this batch's transaction.
    write_conversions(zip(rows, currencies, strict=True))


def attribute_conversions(
    batch_size: int | None = None, max_batches: int = 20
) -> AttributionResult:
    """Attribute what the stream holds now (bounded per call); safe to run concurrently."""
    client: Redis = get_redis_connection("default")
    keys = RedisKeys(settings.REDIS_KEY_PREFIX)
    result = AttributionResult()

    def attribute(fresh: list[Entry]) -> None:
        live = [(eid, [e for e in events if not e.tt]) for eid, events in fresh]
        campaigns = _Campaigns()
        result.views += _record_views(client, keys, live, campaigns)
        _attribute(client, keys, live, campaigns, result)

    # Each partition of the stream under its own lease and watermark; a view and a later
    # conversion in two partitions meet in the next run at the latest.
    for stream in partitions(client, keys):
        reader = Reader(
            client, stream, GROUP, CONSUMER, watermark=watermark_name(stream),
            lease_name=lease_name(keys, stream), lease_seconds=settings.INGEST_LOCK_SECONDS,
        )  # fmt: skip
        done = consume(reader, attribute, batch_size or settings.INGEST_BATCH_SIZE, max_batches)
        result.read += done.read
    if result.read:
        log.info("conversions attributed %s", result)
    return result
