"""Billing is idempotent against the database: a replay Redis forgot is refused at ingest."""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext
from redis import Redis

from campaigns.snapshot import publish_snapshot
from compliance.retention import purge_personal_data
from reporting.ingest import ingest_events
from reporting.models import BilledDecision, HourlyRollup, StreamWatermark
from serving.app import ServingApp
from serving.keys import RedisKeys
from tests.factories import make_campaign, make_line_item, make_placement
from tests.reporting.test_ingest import HOUR_MS, add
from tests.serving.test_app import ad_body, with_client

pytestmark = pytest.mark.django_db

KEYS = RedisKeys(settings.REDIS_KEY_PREFIX)


def forget_counted_marks(client: Redis) -> int:
    """What a Redis that lost its data no longer knows: which decisions were counted."""
    marks = list(client.scan_iter(match=f"{settings.REDIS_KEY_PREFIX}seen:*"))
    return int(client.delete(*marks)) if marks else 0


def totals() -> dict[str, Any]:
    return HourlyRollup.objects.aggregate(
        imps=Sum("impressions"), clicks=Sum("clicks"), spend=Sum("spend")
    )


def test_a_replayed_impression_and_click_redis_forgot_are_not_billed_again(
    redis_client: Redis,
) -> None:
    placement = make_placement()
    make_line_item(make_campaign(), "2.50")
    publish_snapshot()

    async def fire(client: httpx.AsyncClient, app: ServingApp) -> list[str]:
        ad = (await client.post("/v1/ad", json=ad_body(placement.key))).json()
        urls = [ad["decisions"][0]["impression_url"], ad["decisions"][0]["click_url"]]
        for url in urls:
            assert (await client.get(url)).status_code in (200, 302)
        return urls

    async def replay(client: httpx.AsyncClient, app: ServingApp) -> None:
        for url in urls:
            assert (await client.get(url)).status_code in (200, 302)

    urls = with_client(fire)
    assert ingest_events().counted == 3  # request, impression, click
    billed = totals()
    assert (billed["imps"], billed["clicks"]) == (1, 1)

    assert forget_counted_marks(redis_client) == 2
    with_client(replay)  # accepted by serving: its marks are gone
    result = ingest_events()

    assert (result.counted, result.refused) == (2, 2)
    assert totals() == billed
    assert set(BilledDecision.objects.values_list("kind", flat=True)) == {"imp", "clk"}


def test_the_same_decision_twice_in_one_batch_is_billed_once(redis_client: Redis) -> None:
    add(redis_client, "imp", cpm=2_000_000, d="decision-1")
    add(redis_client, "imp", cpm=2_000_000, d="decision-1")
    add(redis_client, "clk", d="decision-1")  # its click is another kind: billed

    result = ingest_events()

    assert result.refused == 1
    row = HourlyRollup.objects.get()
    assert (row.impressions, row.clicks, str(row.spend)) == (1, 1, "0.002000000")


def test_an_erased_subjects_event_without_decision_id_is_still_counted(
    redis_client: Redis,
) -> None:
    # Data-subject erasure blanks the decision id of events not rolled up yet.
    from serving.events import Event, encode_events

    event = Event(t="imp", ts=HOUR_MS, pl=2, li=5, cp=3, adv=1, cpm=1_000_000, d="")
    for _ in range(2):
        redis_client.xadd(KEYS.events, {"v": encode_events([event])})

    assert ingest_events().refused == 0
    assert HourlyRollup.objects.get().impressions == 2
    assert BilledDecision.objects.count() == 0


def test_the_lookup_costs_the_same_queries_for_ten_events_or_a_thousand(
    redis_client: Redis,
) -> None:
    def queries_for(n: int) -> int:
        for _ in range(n):
            add(redis_client, "imp", cpm=1)
        with CaptureQueriesContext(connection) as captured:
            assert ingest_events(batch_size=5000).counted == n
        return len(captured.captured_queries)

    queries_for(1)  # creates the watermark and the rollup row
    assert queries_for(10) == queries_for(1000)  # bulk per batch, never per event


def test_billed_marks_are_pruned_only_once_no_replay_can_be_billed(settings: Any) -> None:
    settings.SERVING_TOKEN_TTL_SECONDS = 3600
    settings.BILLED_DECISION_MARGIN_SECONDS = 600
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    for name, age in (("old", timedelta(hours=2)), ("young", timedelta(minutes=30))):
        BilledDecision.objects.create(decision_id=name, kind="imp", recorded_at=now - age)
    # Ingestion stalled 90 minutes ago: a replay of "old" may still wait in the stream.
    stalled_ms = int((now - timedelta(minutes=90)).timestamp() * 1000)
    StreamWatermark.objects.create(stream=KEYS.events, last_id=f"{stalled_ms}-0")

    assert purge_personal_data(now).billed_decisions_pruned == 0

    StreamWatermark.objects.update(last_id=f"{int(now.timestamp() * 1000)}-0")  # caught up
    assert purge_personal_data(now).billed_decisions_pruned == 1
    assert list(BilledDecision.objects.values_list("decision_id", flat=True)) == ["young"]
