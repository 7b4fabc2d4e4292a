"""Retention on the real Redis: raw events go after their time, never before they are rolled up."""

import time
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Sum
from django.utils import timezone
from redis import Redis

from adsplatform.celery import app as celery_app
from compliance.models import DataSubjectRequest, RequestKind, RequestStatus
from compliance.pseudonym import DAY
from compliance.retention import purge_personal_data
from reporting.ingest import GROUP, ingest_events
from reporting.models import HourlyRollup, StreamWatermark
from serving.events import Event, encode_events
from serving.keys import RedisKeys

pytestmark = pytest.mark.django_db

NOW_MS = int(time.time() * 1000)
OLD_MS = NOW_MS - 3 * DAY * 1000  # three days ago: past a one-day retention


def keys() -> RedisKeys:
    return RedisKeys(settings.REDIS_KEY_PREFIX)


def add(client: Redis, ms: int, seq: int) -> str:
    # One decision per entry: billing refuses a second impression of the same decision.
    event = Event(t="imp", ts=ms, pl=2, li=5, cp=3, adv=1, cr=9, cpm=1_000_000, d=f"{ms}-{seq}")
    entry_id: Any = client.xadd(keys().events, {"v": encode_events([event])}, id=f"{ms}-{seq}")
    return str(entry_id.decode())


def ids(client: Redis) -> list[str]:
    reply: Any = client.xrange(keys().events)
    return [eid.decode() for eid, _ in reply]


def impressions() -> int:
    return HourlyRollup.objects.aggregate(n=Sum("impressions"))["n"] or 0


def test_old_events_are_purged_once_rolled_up_and_never_before(
    redis_client: Redis, settings: Any
) -> None:
    old = [add(redis_client, OLD_MS, n) for n in range(4)]
    fresh = [add(redis_client, NOW_MS, n) for n in range(2)]
    # Ingestion rolls up the first two old entries only (and trims nothing: long retention).
    settings.RAW_EVENT_RETENTION_SECONDS = 30 * DAY
    ingest_events(batch_size=2, max_batches=1)
    assert impressions() == 2
    settings.RAW_EVENT_RETENTION_SECONDS = DAY

    result = purge_personal_data()

    assert (result.events_trimmed, result.events_held_back) == (2, True)
    assert ids(redis_client) == old[2:] + fresh  # the old ones not rolled up stay
    assert impressions() == 2  # rollups untouched

    settings.RAW_EVENT_RETENTION_SECONDS = 30 * DAY
    ingest_events()
    settings.RAW_EVENT_RETENTION_SECONDS = DAY
    result = purge_personal_data()

    assert (result.events_trimmed, result.events_held_back) == (2, False)
    assert ids(redis_client) == fresh  # within retention
    assert impressions() == 6


def test_entries_delivered_but_not_acknowledged_are_kept(redis_client: Redis) -> None:
    old = [add(redis_client, OLD_MS, n) for n in range(3)]
    stream = keys().events
    redis_client.xgroup_create(stream, GROUP, id="0")
    # A consumer read all three and committed the first two; none is acknowledged yet.
    redis_client.xreadgroup(GROUP, "rollup-1", {stream: ">"})
    StreamWatermark.objects.create(stream=stream, last_id=old[1])

    result = purge_personal_data()

    assert (result.events_trimmed, result.events_held_back) == (0, True)
    assert ids(redis_client) == old

    redis_client.xack(stream, GROUP, old[0])
    assert purge_personal_data().events_trimmed == 1
    assert ids(redis_client) == old[1:]


def test_nothing_is_purged_before_ingestion_has_ever_run(redis_client: Redis) -> None:
    old = [add(redis_client, OLD_MS, n) for n in range(2)]

    result = purge_personal_data()

    assert (result.events_trimmed, result.events_held_back) == (0, True)
    assert ids(redis_client) == old


def test_frequency_caps_without_an_expiry_get_one_rotation_period(
    redis_client: Redis, settings: Any
) -> None:
    settings.PSEUDONYM_ROTATION_DAYS = 7
    forgotten, kept = keys().frequency("p1"), keys().frequency("p2")
    redis_client.hset(forgotten, "5:day:20270301", 1)
    redis_client.hset(kept, "5:day:20270301", 1)
    redis_client.expire(kept, 3600)

    result = purge_personal_data()

    assert result.caps_given_expiry == 1
    assert 7 * DAY - 5 <= redis_client.ttl(forgotten) <= 7 * DAY
    assert 3595 <= redis_client.ttl(kept) <= 3600
    assert purge_personal_data().caps_given_expiry == 0


def test_access_exports_are_deleted_after_their_retention(settings: Any) -> None:
    settings.DSAR_EXPORT_RETENTION_DAYS = 30
    officer = get_user_model().objects.create_user("dpo", is_staff=True)
    now = timezone.now()

    def done(kind: str, days_ago: int) -> DataSubjectRequest:
        return DataSubjectRequest.objects.create(
            kind=kind, fingerprint="abcd1234", window_start=now, window_end=now,
            status=RequestStatus.DONE, export="{}" if kind == RequestKind.ACCESS else "",
            counts={"events": 1}, requested_by=officer,
            finished_at=now - timedelta(days=days_ago),
        )  # fmt: skip

    stale, recent = done(RequestKind.ACCESS, 31), done(RequestKind.ACCESS, 29)
    erasure = done(RequestKind.ERASURE, 90)

    assert purge_personal_data(now).exports_deleted == 1

    stale.refresh_from_db()
    recent.refresh_from_db()
    erasure.refresh_from_db()
    assert (stale.export, recent.export) == ("", "{}")
    assert stale.counts == {"events": 1}  # the record of what was done stays
    assert erasure.counts == {"events": 1}


def test_the_purge_runs_on_the_beat() -> None:
    entry: Any = settings.CELERY_BEAT_SCHEDULE["purge-personal-data"]

    assert entry["task"] == "compliance.tasks.purge_personal_data_task"
    assert entry["schedule"].run_every == timedelta(seconds=600)
    celery_app.loader.import_default_modules()
    assert "compliance.tasks.purge_personal_data_task" in celery_app.tasks
