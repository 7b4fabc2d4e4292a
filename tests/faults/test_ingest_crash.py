"""kill -9 of a Celery worker in the middle of ingestion: another worker takes over within
seconds (the ingest lease expires), and the rollups come out exact: none lost, none twice."""

import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db.models import Sum

from adsplatform.celery import app as celery_app
from reporting.models import HourlyRollup
from serving.events import Event, encode_events
from serving.keys import RedisKeys
from tests.faults.services import CeleryWorker, celery_workers, private_redis, shared_database_url

pytestmark = pytest.mark.django_db(transaction=True)

EVENTS = 3_000
BATCH = 100  # small batches so that the kill lands between and inside many commits


def ingest_on(url: str, queue: str) -> None:
    """What beat does every few seconds: ask a worker for an ingestion run."""
    with celery_app.connection_for_write(url=url) as conn:
        celery_app.send_task("reporting.tasks.ingest_events_task", queue=queue, connection=conn)


def rolled_up() -> int:
    return HourlyRollup.objects.aggregate(n=Sum("impressions"))["n"] or 0


def test_a_worker_killed_mid_ingest_is_taken_over_within_seconds_and_counts_stay_exact(
    tmp_path: Path, capsys: Any
) -> None:
    if shared_database_url() is None:
        pytest.skip("worker processes need a database they can reach: run on Postgres")
    stream = RedisKeys(settings.REDIS_KEY_PREFIX).events
    with private_redis(tmp_path / "redis") as server:
        client = server.client()
        pipe = client.pipeline(transaction=False)
        now_ms = int(time.time() * 1000)
        for n in range(EVENTS):
            event = Event(
                t="imp", ts=now_ms, pl=1, li=1 + n % 3, cp=7, adv=3, cpm=1_000_000 + n % 7,
                d=uuid.uuid4().hex,
            )  # fmt: skip
            pipe.xadd(stream, {"v": encode_events([event])})
        pipe.execute()
        expected_spend = sum(Decimal(1_000_000 + n % 7) for n in range(EVENTS)) / 10**9

        env = {"INGEST_BATCH_SIZE": str(BATCH)}
        first = CeleryWorker(tmp_path, "first", server.url, "first", **env)
        second = CeleryWorker(tmp_path, "second", server.url, "second", **env)
        with celery_workers([first, second]):
            # given: the first worker in the middle of a long ingestion
            ingest_on(server.url, "first")
            deadline = time.monotonic() + 20
            while rolled_up() < EVENTS // 5 and time.monotonic() < deadline:
                time.sleep(0.01)
            first.kill()
            killed_at = time.monotonic()
            at_kill = rolled_up()
            assert 0 < at_kill < EVENTS, "the kill did not land in the middle of ingestion"
            assert client.exists(settings.REDIS_KEY_PREFIX + "ingest:lock")  # left behind

            # when: beat keeps asking, now the second worker
            taken_over_at = None
            counted = at_kill
            deadline = killed_at + 30
            while counted < EVENTS and time.monotonic() < deadline:
                ingest_on(server.url, "second")
                time.sleep(0.25)
                counted = rolled_up()
                if taken_over_at is None and counted > at_kill:
                    taken_over_at = time.monotonic()
            done_at = time.monotonic()

    # then: every event counted once, soon after the crash
    assert counted == EVENTS
    totals = HourlyRollup.objects.aggregate(n=Sum("impressions"), spend=Sum("spend"))
    assert totals == {"n": EVENTS, "spend": expected_spend}
    assert taken_over_at is not None
    takeover = taken_over_at - killed_at
    with capsys.disabled():
        print(
            f"\n[fault] celery kill -9 mid-ingest: {at_kill}/{EVENTS} rolled up at the kill;"
            f" taken over after {takeover:.1f}s, all rolled up {done_at - killed_at:.1f}s"
            f" after the kill (lease {settings.INGEST_LOCK_SECONDS:g}s)"
        )
    assert takeover < settings.INGEST_LOCK_SECONDS + 10  # loosely: seconds, not minutes
