"""Building the serving snapshot from the database and publishing it to Redis."""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Prefetch
from django.utils import timezone
from django_redis import get_redis_connection
from redis import Redis

from campaigns.models import (
    BidType,
    Campaign,
    CampaignStatus,
    LineItem,
    LineItemCreative,
    LineItemStatus,
    Placement,
)
from creatives.rendering import render_markup
from serving.keys import RedisKeys
from serving.snapshot import (
    CampaignSnap,
    CreativeSnap,
    LineItemSnap,
    PlacementSnap,
    Snapshot,
    snapshot_encoder,
)

log = logging.getLogger(__name__)

# Line items whose campaign starts within this window are shipped early; serving checks
# the exact flight times itself, so a campaign starts on the second, not on the next publish.
LOOKAHEAD = timedelta(days=1)
# Old versions stay readable this long for serving processes that are mid-swap.
VERSION_TTL_SECONDS = 3600

# Publish data and version together, and never move the version backwards: a slow publisher
# that read the database earlier must not overwrite a newer snapshot.
PUBLISH_SCRIPT = """
redis.call('SET', KEYS[2], ARGV[2], 'EX', tonumber(ARGV[3]))
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then
  redis.call('SET', KEYS[1], ARGV[1])
  return 1
end
return 0
"""


def redis_keys() -> RedisKeys:
    return RedisKeys(settings.REDIS_KEY_PREFIX)


def redis_client() -> Redis:
    return get_redis_connection("default")


def build_snapshot(version: int, now: datetime) -> Snapshot:
    """Everything serving needs, read in one consistent pass over the database."""
    # CPC line items wait for the serving engine's eCPM and click billing (issue #4).
    serving_line_items = LineItem.objects.filter(
        status=LineItemStatus.ACTIVE, bid_type=BidType.CPM
    ).prefetch_related(
        "placements",
        Prefetch(
            "assignments",
            queryset=LineItemCreative.objects.select_related("creative").order_by("creative_id"),
        ),
    )
    campaigns = (
        Campaign.objects.filter(status=CampaignStatus.ACTIVE, start_at__lte=now + LOOKAHEAD)
        .exclude(end_at__lte=now)
        .prefetch_related(Prefetch("line_items", queryset=serving_line_items))
        .order_by("id")
    )
    line_items: list[LineItemSnap] = []
    campaign_snaps: list[CampaignSnap] = []
    creatives: dict[int, CreativeSnap] = {}
    for campaign in campaigns:
        campaign_snaps.append(CampaignSnap(id=campaign.pk, daily_budget=campaign.daily_budget))
        for li in campaign.line_items.all():
            shown = [a for a in li.assignments.all() if a.creative.size in li.sizes]
            if not shown:
                continue  # nothing to show: not a candidate
            for c in (a.creative for a in shown):
                if c.pk not in creatives:
                    creatives[c.pk] = CreativeSnap(
                        id=c.pk, size=c.size, markup=render_markup(c), click_url=c.click_url
                    )
            line_items.append(
                LineItemSnap(
                    id=li.pk,
                    campaign_id=campaign.pk,
                    advertiser_id=campaign.advertiser_id,
                    cpm=li.bid,
                    sizes=list(li.sizes),
                    placement_ids=sorted(p.pk for p in li.placements.all()),
                    start=campaign.start_at.timestamp(),
                    end=campaign.end_at.timestamp() if campaign.end_at else None,
                    creative_ids=[a.creative_id for a in shown],
                    creative_weights=[a.weight for a in shown],
                )
            )
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
        placements=placements,
        campaigns=campaign_snaps,
        creatives=list(creatives.values()),
        line_items=line_items,
    )


def publish_snapshot() -> int:
    """Build a snapshot and make it the current version; returns the version number."""
    client, keys = redis_client(), redis_keys()
    # Take the version before reading the database, so a higher version always saw a
    # database at least as new as a lower one.
    version = int(client.incr(keys.snapshot_seq))
    snapshot = build_snapshot(version, timezone.now())
    data = snapshot_encoder.encode(snapshot)
    client.eval(
        PUBLISH_SCRIPT,
        2,
        keys.snapshot_version,
        keys.snapshot_data(version),
        version,
        data,
        VERSION_TTL_SECONDS,
    )
    log.info(
        "published snapshot v%s: %d line items, %d placements, %d bytes",
        version,
        len(snapshot.line_items),
        len(snapshot.placements),
        len(data),
    )
    return version


def request_snapshot_publish() -> None:
    """Enqueue one publish; changes committed while it waits are picked up by it."""
    from campaigns.tasks import publish_snapshot_task

    client, keys = redis_client(), redis_keys()
    if client.set(keys.snapshot_pending, "1", nx=True, ex=30):
        publish_snapshot_task.delay()


def published_version() -> int:
    return int(redis_client().get(redis_keys().snapshot_version) or 0)
