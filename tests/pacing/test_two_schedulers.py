"""Beat duties with two schedulers (two beat hosts, or a tick sent twice): the pacing tick and
the spend reconciliation run one at a time under short leases (`reporting.lease`), so a
second copy skips instead of doing the work again, and a holder that died frees the duty
within seconds."""

import time
from datetime import datetime

import pytest
from django.conf import settings
from redis import Redis

from campaigns.models import Campaign, LineItem
from campaigns.pacing.services import reconcile_spend, run_pacing
from campaigns.snapshot import redis_keys
from reporting.lease import Lease
from tests.pacing.test_reconcile import booked, counters

pytestmark = pytest.mark.django_db

__all__ = ["booked"]  # the fixture, shared with the reconciliation's tests


def test_a_second_reconciliation_skips_while_one_holds_the_lease(
    booked: tuple[Campaign, LineItem, datetime], redis_client: Redis
) -> None:
    campaign, _, now = booked
    day = now.strftime("%Y%m%d")
    other = Lease(redis_client, redis_keys().reconcile_lock, settings.PACING_LOCK_SECONDS)
    assert other.acquire()  # the other scheduler's reconciliation, mid-run
    try:
        skipped = reconcile_spend(now)
        assert skipped.skipped and skipped.repaired == 0
        assert counters(redis_client, campaign, day).spend == 0
    finally:
        other.release()

    result = reconcile_spend(now)
    again = reconcile_spend(now)  # the second scheduler's tick right after: nothing left

    assert not result.skipped and result.repaired == 3_250_000_000 + 10_250_000_000
    assert again.repaired == 0
    assert counters(redis_client, campaign, day).spend == 3_250_000_000
    assert counters(redis_client, campaign, "life").spend == 10_250_000_000


def test_a_pacing_tick_skips_while_another_runs(
    booked: tuple[Campaign, LineItem, datetime], redis_client: Redis
) -> None:
    _, _, now = booked
    other = Lease(redis_client, redis_keys().pacing_lock, settings.PACING_LOCK_SECONDS)
    assert other.acquire()
    try:
        assert run_pacing(now).campaigns == 0
    finally:
        other.release()
    assert run_pacing(now).campaigns == 1


def test_a_dead_ticks_lease_frees_pacing_within_seconds(
    booked: tuple[Campaign, LineItem, datetime], redis_client: Redis, settings: object
) -> None:
    _, _, now = booked
    settings.PACING_LOCK_SECONDS = 1.5  # type: ignore[attr-defined]
    # A holder killed mid-tick: its lease is in Redis and nobody renews it.
    redis_client.set(redis_keys().pacing_lock, "dead-host:1:token", px=1500)
    assert run_pacing(now).campaigns == 0
    deadline = time.monotonic() + 30
    while run_pacing(now).campaigns == 0:
        assert time.monotonic() < deadline, "the dead holder's lease never expired"
        time.sleep(0.2)
