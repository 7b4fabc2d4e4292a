"""One tick of the live dashboard: read what is watched, read its figures once, send them to
each page's group over the channels layer.

The cost is per tick, not per connected page: a page registers what it watches (`watch`,
renewed by its pings) in one sorted set; a tick reads that set, then the serving figures
once for the ops group and the watched campaigns' states in one batch (one query and one
Redis pipeline, `campaigns.console.delivery.campaign_states`; their line items, a heavier
read, every VERDICT_SECONDS), and sends one message per group however many pages are in it.
Nothing watched: one Redis round trip.
"""

import asyncio
import json
import time
from collections.abc import Mapping
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from campaigns.console import delivery
from campaigns.models import Campaign
from campaigns.snapshot import redis_client
from reporting.live.figures import advance_samples, campaign_fields, ops_fields, read_json_hash
from reporting.metrics.collect import collect

OPS = "ops"
# A page that stops pinging (closed, crashed, its network gone) is forgotten after this.
WATCH_SECONDS = 60
# The last figures of a group are kept this long, for a page that connects between ticks.
LAST_SECONDS = 30
# A campaign's line-item verdict (see `_verdicts`) is read again after this long.
VERDICT_SECONDS = 30
# Group sends in flight at once (each holds a Redis connection while it runs).
SENDS_AT_ONCE = 8


def group_name(watched: str) -> str:
    """The channels group of a watched thing: `ops` or `campaign.<id>`."""
    return f"live.{watched}"


def campaign_watch(campaign_id: int) -> str:
    return f"campaign.{campaign_id}"


def _key(name: str) -> str:
    return f"{settings.REDIS_KEY_PREFIX}live:{name}"


def watch(watched: str) -> None:
    """Someone looks at `watched` for the next WATCH_SECONDS."""
    redis_client().zadd(_key("watched"), {watched: time.time() + WATCH_SECONDS}, gt=True)


def last_figures(watched: str) -> dict[str, Any] | None:
    """The figures last sent to the group of `watched`, if still recent."""
    raw: Any = redis_client().get(_key(f"last:{watched}"))
    return json.loads(raw) if raw else None


def _watched(now: float) -> list[str]:
    pipe = redis_client().pipeline(transaction=False)
    pipe.zremrangebyscore(_key("watched"), "-inf", now)
    pipe.zrangebyscore(_key("watched"), now, "+inf")
    _, members = pipe.execute()
    return [m.decode() if isinstance(m, bytes) else m for m in members]


def _ops_message() -> dict[str, Any]:
    client = redis_client()
    figures = collect()
    held = read_json_hash(client, _key("doors"))
    samples = advance_samples(held, figures.serving)
    pipe = client.pipeline(transaction=True)
    pipe.delete(_key("doors"))
    if samples:
        pipe.hset(_key("doors"), mapping={p: json.dumps(s) for p, s in samples.items()})
        pipe.expire(_key("doors"), WATCH_SECONDS)
    pipe.execute()
    return {"kind": "ops", "fields": ops_fields(figures, samples)}


def _verdicts(campaigns: list[Campaign], at: float) -> dict[int, str]:
    """The line items' part of each campaign's delivery (creatives in review, targeting that
    matches no inventory...): it changes only with edits, so it is read from the database
    for a campaign at most every VERDICT_SECONDS (the budget part, every tick)."""
    client = redis_client()
    held = read_json_hash(client, _key("verdicts"))
    verdicts = {
        c.pk: v["v"]
        for c in campaigns
        if (v := held.get(str(c.pk))) is not None and at - v["at"] < VERDICT_SECONDS
    }
    stale = [c.pk for c in campaigns if c.pk not in verdicts]
    if stale:
        rows = Campaign.objects.filter(pk__in=stale).prefetch_related(
            delivery.line_items_prefetch()
        )
        inventory = delivery.active_inventory()
        fresh = {c.pk: delivery.line_items_verdict(c, inventory) for c in rows}
        pipe = client.pipeline(transaction=False)
        pipe.hset(
            _key("verdicts"),
            mapping={str(pk): json.dumps({"at": at, "v": v}) for pk, v in fresh.items()},
        )
        pipe.expire(_key("verdicts"), WATCH_SECONDS)
        pipe.execute()
        verdicts.update(fresh)
    return verdicts


def _campaign_messages(ids: list[int]) -> dict[str, dict[str, Any]]:
    now = timezone.now()
    rows = list(Campaign.objects.filter(pk__in=ids).select_related("advertiser").order_by("id"))
    states = delivery.campaign_states(rows, now, verdicts=_verdicts(rows, now.timestamp()))
    return {
        campaign_watch(c.pk): {
            "kind": "campaign",
            "campaign": c.pk,
            "fields": campaign_fields(c, states[c.pk], now),
        }
        for c in rows
    }


async def _send(messages: Mapping[str, dict[str, Any]]) -> None:
    layer = get_channel_layer()
    if layer is None:
        raise ImproperlyConfigured("CHANNEL_LAYERS has no default layer")
    # A few at once: each send is a few Redis round trips, each holding a connection.
    slots = asyncio.Semaphore(SENDS_AT_ONCE)

    async def send(watched: str, figures: dict[str, Any]) -> None:
        async with slots:
            message = {"type": "live.figures", "figures": figures}
            await layer.group_send(group_name(watched), message)

    await asyncio.gather(*(send(w, f) for w, f in messages.items()))


def publish_live() -> int:
    """Send the figures of everything watched to its group; returns the messages sent."""
    watched = _watched(time.time())
    messages: dict[str, dict[str, Any]] = {}
    if OPS in watched:
        messages[OPS] = _ops_message()
    ids = [int(w[9:]) for w in watched if w.startswith("campaign.") and w[9:].isdigit()]
    if ids:
        messages.update(_campaign_messages(ids))
    if not messages:
        return 0
    pipe = redis_client().pipeline(transaction=False)
    for watched_name, figures in messages.items():
        pipe.set(_key(f"last:{watched_name}"), json.dumps(figures), ex=LAST_SECONDS)
    pipe.execute()
    async_to_sync(_send)(messages)
    return len(messages)
