"""Building the serving snapshot from the database and publishing it to Redis."""

import logging
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec
from django.conf import settings
from django.db.models import Prefetch
from django.utils import timezone
from django_redis import get_redis_connection
from redis import Redis
from redis.cluster import RedisCluster

from campaigns.fx.services import current_fx_table
from campaigns.models import (
    ApiToken,
    BidType,
    Campaign,
    CampaignStatus,
    Deal,
    LineItem,
    LineItemCreative,
    LineItemStatus,
    Placement,
)
from campaigns.snapshot_learning import LazyStats, with_learning
from compliance.gvl_store import current_gvl
from creatives.snapshot import creative_snap, servable_creatives
from reporting.models import ModelKind, ModelVersion
from serving.buyer_snapshot import buyer_snaps
from serving.keys import RedisKeys
from serving.pctr import CtrModel
from serving.snapshot import (
    TIERS,
    CampaignSnap,
    CreativeSnap,
    DealSnap,
    EncodedSnapshot,
    LineItemSnap,
    PlacementSnap,
    Snapshot,
    decode_manifest,
    decode_snapshot,
    encode_snapshot,
)

log = logging.getLogger(__name__)

# Line items whose campaign starts within this window are shipped early; serving checks
# the exact flight times itself, so a campaign starts on the second, not on the next publish.
LOOKAHEAD = timedelta(days=1)
# Old versions stay readable this long for serving processes that are mid-swap.
VERSION_TTL_SECONDS = 3600

# Publish a version in one step: its parts, its manifest and the version number, or nothing.
# A part the publisher believes is stored comes with empty data and only has its TTL renewed
# (it now lives as long as the newest version holding it); if one of those has expired, the
# script writes nothing and returns their positions, and the publisher sends them again.
# The version never moves backwards: a slow publisher that read the database earlier must
# not overwrite a newer snapshot.
# KEYS: version, manifest, part...; ARGV: version, manifest, ttl, data of each part ("").
# The end of both publish scripts: the manifest, then the version unless a newer one is set.
_SET_MANIFEST_AND_VERSION = """redis.call('SET', KEYS[2], ARGV[2], 'EX', ttl)
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then
  redis.call('SET', KEYS[1], ARGV[1])
  return 1
end
return 0
"""
PUBLISH_SCRIPT = (
    """
local ttl = tonumber(ARGV[3])
local missing = {}
for i = 3, #KEYS do
  if ARGV[i + 1] == '' and redis.call('EXPIRE', KEYS[i], ttl) == 0 then
    missing[#missing + 1] = i - 3
  end
end
if #missing > 0 then
  return missing
end
for i = 3, #KEYS do
  if ARGV[i + 1] ~= '' then
    redis.call('SET', KEYS[i], ARGV[i + 1], 'EX', ttl)
  end
end
"""
    + _SET_MANIFEST_AND_VERSION
)
PUBLISH_ATTEMPTS = 3
# On a Redis Cluster the parts (content-addressed, across slots) are written first, then this
# sets the manifest and, unless a newer one is, the version (both in one slot, `{s}`).
PUBLISH_MANIFEST_SCRIPT = "local ttl = tonumber(ARGV[3])\n" + _SET_MANIFEST_AND_VERSION


def redis_keys() -> RedisKeys:
    return RedisKeys(settings.REDIS_KEY_PREFIX)


def redis_client() -> Redis:
    return get_redis_connection("default")


def fx_rates() -> dict[str, Decimal]:
    """Units of the platform currency one unit of each currency is worth, as the next
    snapshot carries them (`campaigns.fx.services.current_fx_table`)."""
    return current_fx_table().rates


def _dayparts(parts: list[dict[str, Any]]) -> list[tuple[int, int, int]]:
    def minutes(text: str) -> int:
        hours, mins = text.split(":")
        return int(hours) * 60 + int(mins)

    return [(d, minutes(p["start"]), minutes(p["end"])) for p in parts for d in p["days"]]


def _line_item_snap(
    li: LineItem, campaign: Campaign, shown: list[LineItemCreative], rate: Decimal
) -> LineItemSnap:
    return LineItemSnap(
        id=li.pk,
        campaign_id=campaign.pk,
        advertiser_id=campaign.advertiser_id,
        bid=(li.bid * rate).quantize(Decimal("0.0001")),
        sizes=list(li.sizes),
        start=campaign.start_at.timestamp(),
        end=campaign.end_at.timestamp() if campaign.end_at else None,
        creative_ids=[a.creative_id for a in shown],
        creative_weights=[a.weight for a in shown],
        placement_ids=sorted(p.pk for p in li.placements.all()),
        tier=TIERS[campaign.priority_tier],
        bid_type=li.bid_type,
        predicted_ctr=settings.SERVING_DEFAULT_CTR if li.bid_type == BidType.CPC else 0.0,
        currency=campaign.currency,
        fx_rate=rate,
        countries=list(li.countries),
        regions=list(li.regions),
        device_types=list(li.device_types),
        channels=list(li.channels),
        properties=list(li.properties),
        dayparts=_dayparts(li.dayparts),
        time_zone=campaign.advertiser.time_zone,
        keywords=sorted({k.strip().lower() for k in li.keywords}),
        negative_keywords=sorted({k.strip().lower() for k in li.negative_keywords}),
        segments=list(li.segments),
        categories=list(li.categories),
        child_safe=li.child_safe,
        deal_ids=sorted(d.deal_id for d in li.deals.all()),
        frequency_caps=[(c["count"], c["period"]) for c in li.frequency_caps],
        daily_budget=li.daily_budget,
        lifetime_budget=li.lifetime_budget,
        bid_strategy=li.bid_strategy,
        min_bid=(li.min_bid * rate).quantize(Decimal("0.0001")) if li.min_bid else None,
    )


def _deal_snaps(rates: dict[str, Decimal]) -> tuple[list[DealSnap], set[str]]:
    """The deals in the platform currency, and the ids of those whose currency has no rate
    (left out, with a warning: never priced at a made-up rate of 1)."""
    deals, unpriced = [], set()
    for d in Deal.objects.order_by("id"):
        rate = rates.get(d.currency.upper())
        if rate is None:
            log.warning("deal %s: no FX rate for %s; not offered", d.deal_id, d.currency)
            unpriced.add(d.deal_id)
            continue
        deals.append(
            DealSnap(
                deal_id=d.deal_id,
                advertiser_id=d.advertiser_id,
                floor=d.floor * rate,
                fixed_price=d.fixed_price * rate if d.fixed_price is not None else None,
            )
        )
    return deals, unpriced


def live_model(kind: str = ModelKind.PCTR) -> CtrModel | None:
    """The live model of `kind`'s weights, for serving to score with in process."""
    live = ModelVersion.objects.live(kind).only("pk", "weights").first()
    return live.model() if live is not None else None


def build_snapshot(version: int, now: datetime) -> Snapshot:
    """Everything serving needs, read in one consistent pass over the database."""
    rates = fx_rates()
    deals, unpriced = _deal_snaps(rates)
    serving_line_items = LineItem.objects.filter(status=LineItemStatus.ACTIVE).prefetch_related(
        "placements",
        "deals",
        Prefetch(
            "assignments",
            # Rendering reads the advertiser (VAST) and renditions: no query per creative.
            queryset=LineItemCreative.objects.filter(creative__in=servable_creatives())
            .select_related("creative", "creative__advertiser")
            .prefetch_related("creative__renditions")
            .order_by("creative_id"),
        ),
    )
    campaigns = (
        Campaign.objects.filter(status=CampaignStatus.ACTIVE, start_at__lte=now + LOOKAHEAD)
        .exclude(end_at__lte=now)
        .select_related("advertiser")
        .prefetch_related(Prefetch("line_items", queryset=serving_line_items))
        .order_by("id")
    )
    model = live_model(ModelKind.PCTR)
    stats = LazyStats(now)
    line_items: list[LineItemSnap] = []
    campaign_snaps: list[CampaignSnap] = []
    creatives: dict[int, CreativeSnap] = {}
    for campaign in campaigns:
        rate = rates.get(campaign.currency)
        if rate is None:
            log.warning(
                "campaign %s: no FX rate for %s; not served", campaign.pk, campaign.currency
            )
            continue
        campaign_snaps.append(
            CampaignSnap(
                id=campaign.pk,
                daily_budget=campaign.daily_budget,
                lifetime_budget=campaign.lifetime_budget,
                time_zone=campaign.advertiser.time_zone,
            )
        )
        for li in campaign.line_items.all():
            shown = []
            for a in li.assignments.all():
                snap = creatives.get(a.creative_id) or creative_snap(a.creative)
                creatives[a.creative_id] = snap
                if snap.format != "banner" or snap.size in li.sizes:
                    shown.append(a)
            if not shown:
                continue  # nothing to show: not a candidate
            snap_li = _line_item_snap(li, campaign, shown, rate)
            slots = [
                creatives[a.creative_id].size
                if creatives[a.creative_id].format == "banner"
                else creatives[a.creative_id].format
                for a in shown
            ]
            snap_li = with_learning(snap_li, li, campaign, rate, model, stats, slots)
            if unpriced and snap_li.deal_ids:
                # A deal we cannot price is not offered; a deal-only line item left without
                # any deal does not serve at all (it would otherwise enter the open auction).
                kept = [d for d in snap_li.deal_ids if d not in unpriced]
                if not kept:
                    continue
                snap_li = msgspec.structs.replace(snap_li, deal_ids=kept)
            line_items.append(snap_li)
    used = {i for li in line_items for i in li.creative_ids}
    placements = [
        PlacementSnap(
            id=p.pk,
            publisher_id=p.publisher_id,
            key=p.key,
            sizes=list(p.sizes),
            floor_cpm=p.floor_cpm,
        )
        for p in Placement.objects.filter(is_active=True).order_by("id")
    ]
    return Snapshot(
        version=version,
        built_at=now.isoformat(),
        currency=settings.SERVING_CURRENCY,
        fx=rates,
        placements=placements,
        campaigns=campaign_snaps,
        creatives=[c for i, c in creatives.items() if i in used],
        line_items=line_items,
        buyers=buyer_snaps(current_gvl(), now),
        deals=deals,
        staff_token_hashes=sorted(
            ApiToken.objects.active()
            .filter(user__is_staff=True, user__is_active=True)
            .values_list("key_hash", flat=True)
        ),
        ctr_model=model,
        # Scores only where the pCTR model does (target-CPA line items need both).
        cvr_model=live_model(ModelKind.PCVR) if model is not None else None,
    )


def write_snapshot(
    client: Redis | RedisCluster,
    keys: RedisKeys,
    encoded: EncodedSnapshot,
    ttl: int = VERSION_TTL_SECONDS,
) -> tuple[bool, int]:
    """Store an encoded snapshot and make it current unless a newer one is; returns whether
    it became current and how many bytes of parts were written.

    Parts already in Redis (most of them, after an edit) are not sent again: the first
    attempt sends none and learns which are missing, the next sends those."""
    if isinstance(client, RedisCluster):
        return _write_snapshot_on_cluster(client, keys, encoded, ttl)
    digests = list(encoded.parts)
    part_keys = [keys.snapshot_part(d) for d in digests]
    send: set[int] = set()
    for _ in range(PUBLISH_ATTEMPTS):
        data = [encoded.parts[d] if n in send else b"" for n, d in enumerate(digests)]
        reply = client.eval(
            PUBLISH_SCRIPT,
            2 + len(digests),
            keys.snapshot_version,
            keys.snapshot_manifest(encoded.version),
            *part_keys,
            encoded.version,
            encoded.manifest,
            ttl,
            *data,
        )
        if not isinstance(reply, list):
            return bool(reply), sum(len(d) for d in data)
        send.update(int(n) for n in reply)
    raise RuntimeError(f"snapshot v{encoded.version}: parts keep expiring while publishing")


def _write_snapshot_on_cluster(
    client: RedisCluster, keys: RedisKeys, encoded: EncodedSnapshot, ttl: int
) -> tuple[bool, int]:
    """`write_snapshot` on a Redis Cluster (redis-py's `RedisCluster`, whose pipelines go per
    node): parts kept (EXPIRE) or written, then the manifest and version in one script. A
    part cannot expire between the two: the TTL was just renewed."""
    digests = list(encoded.parts)
    pipe = client.pipeline(transaction=False)
    for digest in digests:
        pipe.expire(keys.snapshot_part(digest), ttl)
    missing = [d for d, kept in zip(digests, pipe.execute(), strict=True) if not kept]
    pipe = client.pipeline(transaction=False)
    for digest in missing:
        pipe.set(keys.snapshot_part(digest), encoded.parts[digest], ex=ttl)
    pipe.execute()
    reply = client.eval(
        PUBLISH_MANIFEST_SCRIPT,
        2,
        keys.snapshot_version,
        keys.snapshot_manifest(encoded.version),
        encoded.version,
        encoded.manifest,
        ttl,
    )
    return bool(reply), sum(len(encoded.parts[d]) for d in missing)


def publish_snapshot() -> int:
    """Build a snapshot and make it the current version; returns the version number."""
    client, keys = redis_client(), redis_keys()
    # Take the version before reading the database, so a higher version always saw a
    # database at least as new as a lower one.
    version = int(client.incr(keys.snapshot_seq))
    snapshot = build_snapshot(version, timezone.now())
    encoded = encode_snapshot(snapshot)
    _, written = write_snapshot(client, keys, encoded)
    log.info(
        "published snapshot v%s: %d line items, %d placements, %d bytes (%d written)",
        version,
        len(snapshot.line_items),
        len(snapshot.placements),
        encoded.size,
        written,
    )
    return version


def read_snapshot(client: Redis, keys: RedisKeys, version: int) -> Snapshot | None:
    """A published version, decoded whole (tests and tools); None once it has expired."""
    manifest = client.get(keys.snapshot_manifest(version))
    if manifest is None:
        return None
    digests = list(dict.fromkeys(decode_manifest(manifest).parts()))
    blobs = [b for b in client.mget([keys.snapshot_part(d) for d in digests]) if b is not None]
    if len(blobs) != len(digests):
        return None
    return decode_snapshot(manifest, dict(zip(digests, blobs, strict=True)))


def request_snapshot_publish() -> None:
    """Enqueue one publish; changes committed while it waits are picked up by it."""
    from campaigns.tasks import publish_snapshot_task

    client, keys = redis_client(), redis_keys()
    if client.set(keys.snapshot_pending, "1", nx=True, ex=30):
        publish_snapshot_task.delay()


def published_version() -> int:
    return int(redis_client().get(redis_keys().snapshot_version) or 0)
