"""The ingest lock is a lease of a few seconds, renewed while its holder works."""

import time
from typing import Any

import pytest
from django.conf import settings
from redis import Redis

from reporting import ingest
from reporting.ingest import GROUP, ingest_events
from reporting.lease import Lease, LeaseLost
from reporting.models import HourlyRollup, StreamWatermark
from serving.keys import RedisKeys
from tests.reporting.test_ingest import add

pytestmark = pytest.mark.django_db


def lock_name() -> str:
    return RedisKeys(settings.REDIS_KEY_PREFIX).ingest_lock


def test_a_working_holder_keeps_its_lease_past_its_term(redis_client: Redis) -> None:
    lease = Lease(redis_client, lock_name(), seconds=0.3)
    assert lease.acquire()
    time.sleep(1.0)  # over three terms: only the renewals keep it

    assert not Lease(redis_client, lock_name(), seconds=0.3).acquire()
    lease.check()
    lease.release()
    assert redis_client.exists(lock_name()) == 0


def test_a_lease_whose_holder_stopped_renewing_expires_within_its_term(
    redis_client: Redis,
) -> None:
    # What a killed holder leaves behind: its last renewal, with the lease's own timeout.
    redis_client.set(lock_name(), "dead-host:1:abc", px=int(settings.INGEST_LOCK_SECONDS * 1000))
    add(redis_client, "imp", cpm=1_000_000)
    assert ingest_events().read == 0  # still held

    time.sleep(settings.INGEST_LOCK_SECONDS + 0.2)

    assert ingest_events().counted == 1
    assert settings.INGEST_LOCK_SECONDS <= 10  # "a few seconds", not minutes


def test_a_holder_that_lost_its_lease_rolls_back_instead_of_committing(
    redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    add(redis_client, "imp", cpm=1_000_000)
    add(redis_client, "clk")
    write = ingest._write

    def stalled_past_the_lease(totals: Any) -> None:
        write(totals)
        # Meanwhile the lease expired and another worker took it over.
        redis_client.set(lock_name(), "other-host:2:def", px=5000)

    monkeypatch.setattr(ingest, "_write", stalled_past_the_lease)
    result = ingest_events()
    monkeypatch.undo()

    assert (result.read, result.counted) == (2, 0)
    assert HourlyRollup.objects.count() == 0
    assert StreamWatermark.objects.filter(last_id__gt="0-0").count() == 0
    stream = RedisKeys(settings.REDIS_KEY_PREFIX).events
    assert redis_client.xpending(stream, GROUP)["pending"] == 2  # left for the new holder
    assert redis_client.get(lock_name()) == b"other-host:2:def"  # not released by the loser

    redis_client.delete(lock_name())
    assert ingest_events().counted == 2
    row = HourlyRollup.objects.get()
    assert (row.impressions, row.clicks) == (1, 1)


def test_check_raises_once_another_holder_took_over(redis_client: Redis) -> None:
    lease = Lease(redis_client, lock_name(), seconds=5)
    assert lease.acquire()
    redis_client.set(lock_name(), "someone-else")

    with pytest.raises(LeaseLost):
        lease.check()
    lease.release()
    assert redis_client.get(lock_name()) == b"someone-else"
