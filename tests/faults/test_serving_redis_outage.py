"""The serving app against a private Redis that is stopped for 15 s, or hung (SIGSTOP).

What must hold (README "Redis outage"): no 500; paid demand does not fill while its events
cannot be recorded (house line items still do); tracking answers 503 with Retry-After; one
log line for the outage and one at recovery; requests answer within their deadline and the
sink's queue stays bounded while Redis hangs; paid filling resumes within RECOVERY_SECONDS
of Redis being back; every impression answered 200 is in the stream exactly once.
"""

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.utils import timezone

from campaigns.models import Campaign
from campaigns.snapshot import build_snapshot, encode_snapshot, write_snapshot
from serving.app import ServingApp
from serving.config import ServingConfig
from serving.events import decode_events
from serving.keys import RedisKeys
from tests.factories import make_campaign, make_line_item, make_placement
from tests.faults.services import PrivateRedis, private_redis

pytestmark = pytest.mark.django_db

REDIS_TIMEOUT = 0.5  # SERVING_REDIS_TIMEOUT_SECONDS for these runs
RECOVERY_SECONDS = 3.0  # what the README promises: paid filling again within this
OUTAGE_SECONDS = 15.0
HANG_SECONDS = 3.0


@dataclasses.dataclass
class Book:
    placement_key: str
    paid: int  # line item ids
    house: int


@pytest.fixture
def book() -> Book:
    placement = make_placement()
    paid_campaign, house_campaign = make_campaign(), make_campaign()
    Campaign.objects.filter(pk=house_campaign.pk).update(priority_tier="house")
    paid = make_line_item(paid_campaign, "5.00")
    house = make_line_item(house_campaign, "0.50")
    return Book(placement.key, paid.pk, house.pk)


def publish_to(server: PrivateRedis) -> None:
    keys = RedisKeys(settings.REDIS_KEY_PREFIX)
    write_snapshot(server.client(), keys, encode_snapshot(build_snapshot(1, timezone.now())))


def serve(
    server: PrivateRedis, scenario: Callable[[httpx.AsyncClient, ServingApp], Awaitable[Any]]
) -> Any:
    from tests.serving.test_app import config

    cfg: ServingConfig = dataclasses.replace(
        config(), redis_url=server.url, redis_timeout=REDIS_TIMEOUT, rate_limit=0
    )

    async def go() -> Any:
        app = ServingApp(cfg)
        await app.startup()
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://ads.test") as client:
                return await scenario(client, app)
        finally:
            await app.shutdown()

    return asyncio.run(go())


AD = {"slots": [{"id": "top", "sizes": ["300x250"]}]}


async def ad(client: httpx.AsyncClient, book: Book) -> tuple[int, int | None, str | None]:
    """(status, line item filled, impression URL) of one ad request."""
    response = await client.post("/v1/ad", json={"placement": book.placement_key, **AD})
    if response.status_code != 200:
        return response.status_code, None, None
    decision = response.json()["decisions"][0]
    return 200, decision["line_item"], decision["impression_url"]


async def until_paid_fills(client: httpx.AsyncClient, book: Book, limit: float) -> float:
    """Seconds until an ad request fills with paid demand again (polled every 50 ms)."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if (await ad(client, book))[1] == book.paid:
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    return float("inf")


async def until_outage_over(app: ServingApp, limit: float) -> None:
    """Until every part of serving that lost Redis has reached it again (the snapshot reads
    retry once a second)."""
    started = time.monotonic()
    while app.outage.down and time.monotonic() - started < limit:
        await asyncio.sleep(0.05)


def impressions_in(server: PrivateRedis) -> list[str]:
    stream = RedisKeys(settings.REDIS_KEY_PREFIX).events
    entries: Any = server.client().xrange(stream)
    return [e.d for _, f in entries for e in decode_events(f[b"v"]) if e.t == "imp"]


def outage_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "serving.outage"]


def test_redis_stopped_for_15_s_pauses_paid_demand_answers_503_and_recovers(
    book: Book, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with private_redis(tmp_path / "redis") as server:
        publish_to(server)

        async def scenario(client: httpx.AsyncClient, app: ServingApp) -> dict[str, Any]:
            status, li, first_imp = await ad(client, book)
            assert (status, li) == (200, book.paid)
            assert first_imp is not None
            acknowledged = [first_imp] if (await client.get(first_imp)).status_code == 200 else []
            _, _, held_imp = await ad(client, book)  # rendered now, its pixel fires later
            assert held_imp is not None
            await app.sink.drain()

            await asyncio.to_thread(server.stop)
            fills: list[int | None] = []
            statuses: set[int] = set()
            tracking: list[httpx.Response] = []
            started = time.monotonic()
            for _ in range(int(OUTAGE_SECONDS / 0.25)):  # bounded: one round per 250 ms
                status, li, _ = await ad(client, book)
                statuses.add(status)
                fills.append(li)
                tracking.append(await client.get(held_imp))
                tracking.append(
                    await client.get(held_imp.replace("/v1/imp/", "/v1/ev/") + "?e=start")
                )
                await asyncio.sleep(max(0.0, started + 0.25 * len(fills) - time.monotonic()))
            during = time.monotonic() - started

            await asyncio.to_thread(server.start)
            recovered = await until_paid_fills(client, book, 10.0)
            after = await client.get(held_imp)
            if after.status_code == 200:
                acknowledged.append(held_imp)
            await until_outage_over(app, RECOVERY_SECONDS)
            await app.sink.drain()
            return {
                "statuses": statuses, "fills": fills, "tracking": tracking,
                "during": during, "recovered": recovered, "after": after.status_code,
                "acknowledged": acknowledged,
            }  # fmt: skip

        result = serve(server, scenario)
        imps = impressions_in(server)

    print(  # figures for docs/deploy.md (pytest -s)
        f"redis stopped {result['during']:.1f} s: paid filling again "
        f"{result['recovered']:.2f} s after the restart"
    )
    assert result["during"] >= OUTAGE_SECONDS - 0.5
    assert 500 not in result["statuses"]
    # Paid demand never fills while Redis is down; the house line item does.
    assert set(result["fills"]) == {book.house}
    assert {r.status_code for r in result["tracking"]} == {503}
    assert {r.headers["retry-after"] for r in result["tracking"]} == {"5"}
    assert result["recovered"] < RECOVERY_SECONDS
    assert result["after"] == 200
    # Nothing acknowledged is lost, nothing is counted twice.
    decision_ids = [url.rsplit("/", 1)[1] for url in result["acknowledged"]]
    assert len(imps) == len(decision_ids) == 2
    assert len(set(imps)) == 2
    # One line when the outage starts, one when it ends: not one per request.
    lines = outage_lines(caplog)
    assert len(lines) == 2, lines
    assert lines[0].startswith("Redis unavailable to serving")
    assert lines[1].startswith("Redis back for serving after")


def test_a_hung_redis_neither_hangs_requests_nor_grows_the_queue_and_recovers(
    book: Book, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with private_redis(tmp_path / "redis") as server:
        publish_to(server)

        async def scenario(client: httpx.AsyncClient, app: ServingApp) -> dict[str, Any]:
            app.sink.max_pending = 300  # small, so that the hang fills it
            status, li, held_imp = await ad(client, book)
            assert (status, li, held_imp is not None) == (200, book.paid, True)
            await app.sink.drain()

            server.freeze()
            slowest, statuses, fills, queue = 0.0, set(), [], 0
            tracking: set[int] = set()
            started = time.monotonic()
            while time.monotonic() - started < HANG_SECONDS:  # bounded in time and count
                for _ in range(50):
                    t0 = time.monotonic()
                    status, li, _ = await ad(client, book)
                    slowest = max(slowest, time.monotonic() - t0)
                    statuses.add(status)
                    fills.append(li)
                    queue = max(queue, app.sink.pending)
                t0 = time.monotonic()
                tracking.add((await client.get(held_imp or "")).status_code)
                slowest = max(slowest, time.monotonic() - t0)
                await asyncio.sleep(0.1)
            dropped = app.sink.dropped

            server.thaw()
            recovered = await until_paid_fills(client, book, 10.0)
            after = (await client.get(held_imp or "")).status_code
            await until_outage_over(app, RECOVERY_SECONDS)
            await app.sink.drain()
            return {
                "slowest": slowest, "statuses": statuses, "fills": fills, "queue": queue,
                "dropped": dropped, "tracking": tracking, "recovered": recovered,
                "after": after,
            }  # fmt: skip

        result = serve(server, scenario)
        imps = impressions_in(server)

    print(
        f"redis hung {HANG_SECONDS:.0f} s: slowest answer {result['slowest'] * 1000:.0f} ms, "
        f"queue at most {result['queue']}, {result['dropped']} operations dropped, "
        f"{sum(1 for li in result['fills'] if li == book.paid)} paid fills before the stop, "
        f"paid filling again {result['recovered']:.2f} s after SIGCONT"
    )
    # Every request answers within the Redis timeout plus one sweep (and some slack).
    assert result["slowest"] < REDIS_TIMEOUT + 0.5
    assert 500 not in result["statuses"]
    assert result["tracking"] == {503}
    # The queue stops at its bound; what did not fit is counted, not kept.
    assert result["queue"] <= 300
    assert result["dropped"] > 0
    # Paid demand stops within a quarter of the timeout; at most the first sweep's worth of
    # requests (decided before it) filled paid.
    paid_during = sum(1 for li in result["fills"] if li == book.paid)
    assert paid_during <= 50
    assert result["fills"][-1] == book.house
    assert result["recovered"] < RECOVERY_SECONDS
    assert result["after"] == 200
    assert len(imps) == 1  # the one acknowledged impression, once
    lines = outage_lines(caplog)
    assert len(lines) == 2, lines
