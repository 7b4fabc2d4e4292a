"""Billing across Redis restarts, with AOF and without, on a private redis-server.

Serving (in process, through its ASGI app), the snapshot publisher and ingestion all use the
private server; the test database is the one pytest made. What is acknowledged is what a
device got a 200 for: those impressions must be billed exactly once.
"""

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.db.models import Sum

from campaigns.snapshot import publish_snapshot
from reporting.ingest import IngestResult, ingest_events
from reporting.models import BilledDecision, HourlyRollup
from serving.app import ServingApp
from serving.config import ServingConfig
from tests.factories import make_campaign, make_line_item, make_placement
from tests.faults.services import PrivateRedis, private_redis

pytestmark = pytest.mark.django_db

SLOTS = 5  # decisions per ad request (one line item each)
CONCURRENCY = 50  # tracking requests in flight at once, as many devices would send them
OUTAGE_SECONDS = 15


def use_redis(settings: Any, server: PrivateRedis) -> None:
    """Point Django (snapshot publishing, ingestion) at the private server."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": server.url,
            "KEY_PREFIX": f"{settings.REDIS_KEY_PREFIX}cache",
        }
    }


def book() -> str:
    placement = make_placement(sizes=["300x250"])
    campaign = make_campaign()
    for n in range(SLOTS):
        make_line_item(campaign, f"{2 + n}.00")
    publish_snapshot()
    return placement.key


def with_app(server: PrivateRedis, scenario: Callable[[httpx.AsyncClient], Awaitable[Any]]) -> Any:
    async def go() -> Any:
        cfg = dataclasses.replace(ServingConfig.from_settings(), redis_url=server.url)
        app = ServingApp(cfg)
        await app.startup()
        # A failing request is the 500 a device would see, not an exception in the test.
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://ads.test") as http:
                return await scenario(http)
        finally:
            await app.shutdown()

    return asyncio.run(go())


async def serve(http: httpx.AsyncClient, key: str, decisions: int) -> list[str]:
    """Impression URLs of `decisions` served decisions."""
    slots = [{"id": f"s{n}", "sizes": ["300x250"]} for n in range(SLOTS)]
    urls: list[str] = []
    for _ in range(decisions // SLOTS * 2):  # bounded: twice what a full fill needs
        ad = await http.post("/v1/ad", json={"placement": key, "slots": slots})
        urls += [d["impression_url"] for d in ad.json()["decisions"]]
        if len(urls) >= decisions:
            return urls[:decisions]
    raise AssertionError(f"served only {len(urls)} of {decisions} decisions")


async def fire(http: httpx.AsyncClient, urls: list[str], timeout: float = 5.0) -> list[int]:
    """The status each impression URL answers (0: no answer within the timeout)."""

    async def one(url: str) -> int:
        try:
            return (await asyncio.wait_for(http.get(url), timeout)).status_code
        except TimeoutError:
            return 0

    codes: list[int] = []
    for start in range(0, len(urls), CONCURRENCY):
        codes += await asyncio.gather(*(one(u) for u in urls[start : start + CONCURRENCY]))
    return codes


def ingest_all() -> IngestResult:
    total = IngestResult()
    for _ in range(100):  # bounded
        run = ingest_events()
        if not run.read:
            return total
        total.read += run.read
        total.counted += run.counted
        total.refused += run.refused
    raise AssertionError("ingestion did not catch up")


def billed_impressions() -> int:
    return HourlyRollup.objects.aggregate(n=Sum("impressions"))["n"] or 0


def report(capsys: Any, line: str) -> None:
    with capsys.disabled():
        print(f"\n[fault] {line}")


def test_redis_stopped_15s_with_aof_loses_no_acknowledged_impression_and_bills_none_twice(
    tmp_path: Path, settings: Any, capsys: Any
) -> None:
    with private_redis(tmp_path / "redis", appendonly=True) as server:
        use_redis(settings, server)
        key = book()

        # given: 200 impressions acknowledged, about half of them rolled up
        async def before(http: httpx.AsyncClient) -> tuple[list[str], list[int]]:
            urls = await serve(http, key, 220)
            return urls, await fire(http, urls[:200])

        urls, codes = with_app(server, before)
        acked = {u for u, c in zip(urls, codes, strict=False) if c == 200}
        assert len(acked) == 200
        ingest_events(batch_size=150, max_batches=1)
        rolled_up_before = billed_impressions()
        assert 0 < rolled_up_before < 200

        # when: Redis is stopped for 15 s while serving stays up, then restarted
        async def outage(http: httpx.AsyncClient) -> tuple[list[int], list[int], float]:
            await fire(http, urls[:1])  # connected before the outage
            await asyncio.to_thread(server.stop)
            stopped = time.monotonic()
            during = await fire(http, urls[200:], timeout=3)  # 20 never fired before
            await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped)))
            await asyncio.to_thread(server.start)
            back = time.monotonic()
            after = await fire(http, urls)  # every URL again: replays and the 20 new ones
            for _ in range(20):  # bounded: until serving has reconnected
                retry = [u for u, c in zip(urls, after, strict=True) if c != 200]
                if not retry:
                    break
                await asyncio.sleep(0.25)
                again = dict(zip(retry, await fire(http, retry), strict=True))
                after = [again.get(u, c) for u, c in zip(urls, after, strict=True)]
            return during, after, time.monotonic() - back

        during, after, reconnect = with_app(server, outage)
        acked |= {u for u, c in zip(urls[200:], during, strict=True) if c == 200}
        acked |= {u for u, c in zip(urls, after, strict=True) if c == 200}
        result = ingest_all()

    # then: every acknowledged impression billed once; Redis kept its marks (no replays)
    assert billed_impressions() == len(acked) == 220
    assert BilledDecision.objects.count() == 220
    assert result.refused == 0
    assert all(c != 200 for c in during)  # nothing acknowledged that could not be recorded
    report(
        capsys,
        f"redis stopped {OUTAGE_SECONDS}s, AOF on: {rolled_up_before} rolled up before, "
        f"{200 - rolled_up_before} acknowledged but not rolled up survived; 20 impressions "
        f"refused during the outage (codes {sorted(set(during))}), all billed once after; "
        f"serving recorded again {reconnect:.1f}s after restart; 0 lost, 0 billed twice",
    )


def test_redis_restarted_without_aof_replays_of_ingested_decisions_bill_nothing_again(
    tmp_path: Path, settings: Any, capsys: Any
) -> None:
    with private_redis(tmp_path / "redis", appendonly=False) as server:
        use_redis(settings, server)
        key = book()

        # given: 1,000 impressions billed, 50 more acknowledged but not rolled up yet
        async def billed_ones(http: httpx.AsyncClient) -> tuple[list[str], list[int]]:
            urls = await serve(http, key, 1000)
            return urls, await fire(http, urls)

        urls, codes = with_app(server, billed_ones)
        assert codes.count(200) == 1000
        assert ingest_all().counted > 0
        assert billed_impressions() == 1000
        spend_before = HourlyRollup.objects.aggregate(s=Sum("spend"))["s"]

        async def late_ones(http: httpx.AsyncClient) -> list[int]:
            return await fire(http, await serve(http, key, 50))

        late_acked = (with_app(server, late_ones)).count(200)
        assert late_acked == 50

        # when: Redis dies and comes back empty, and every billed URL is replayed
        server.kill()
        server.start()
        assert server.client().dbsize() == 0
        publish_snapshot()

        async def replay(http: httpx.AsyncClient) -> list[int]:
            return await fire(http, urls)

        replay_codes = with_app(server, replay)
        result = ingest_all()

    # then: serving took the replays (its marks are gone), billing refused every one
    assert replay_codes.count(200) == 1000
    assert result.refused == 1000
    assert billed_impressions() == 1000
    assert HourlyRollup.objects.aggregate(s=Sum("spend"))["s"] == spend_before
    lost = late_acked - (billed_impressions() - 1000)
    assert lost == 50  # what no database can catch: acknowledged, only ever in Redis
    report(
        capsys,
        f"redis restarted without AOF: 1000 replays of billed decisions accepted by serving, "
        f"{result.refused} refused by ingestion, 0 billed again; {lost} acknowledged "
        f"impressions not yet rolled up were lost with Redis",
    )
