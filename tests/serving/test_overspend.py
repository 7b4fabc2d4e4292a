"""Tiny budgets over several serving processes: near its end a budget is reserved, never
passed (issue 12 item 17); far from it nothing waits."""

import asyncio
import time
from decimal import Decimal

import httpx
import pytest
from django.conf import settings
from redis import Redis

from campaigns.snapshot import publish_snapshot
from serving.app import ServingApp
from serving.keys import RedisKeys
from tests.factories import make_campaign, make_line_item, make_placement
from tests.serving.test_app import ad_body, config

pytestmark = pytest.mark.django_db


def day_spend(client: Redis, campaign_id: int) -> Decimal:
    keys = RedisKeys(settings.REDIS_KEY_PREFIX)
    raw = client.hget(keys.spend(time.strftime("%Y%m%d", time.gmtime()), campaign_id), "s")
    return Decimal(int(raw or 0)) / 10**9


def run_two_processes(placement_key: str, requests: int) -> list[int]:
    """Two serving apps (two processes as far as budgets go: their own running counts and
    Redis connections) on one Redis, all requests in flight at once."""

    async def go() -> list[int]:
        apps = [ServingApp(config()), ServingApp(config())]
        for app in apps:
            await app.startup()
        clients = [
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ads.test")
            for app in apps
        ]
        try:
            answers = await asyncio.gather(
                *(
                    clients[n % 2].post("/v1/ad", json=ad_body(placement_key))
                    for n in range(requests)
                )
            )
            for app in apps:
                await app.sink.drain()
            return [a.status_code for a in answers]
        finally:
            for client in clients:
                await client.aclose()
            for app in apps:
                await app.shutdown()

    return asyncio.run(go())


def test_a_tiny_budget_over_two_processes_is_not_overspent(redis_client: Redis) -> None:
    placement = make_placement(floor=Decimal("4.99"))
    campaign = make_campaign(daily_budget=Decimal("0.05"))  # 10 wins at a 5.00 CPM
    make_line_item(campaign, "5.00")
    publish_snapshot()

    statuses = run_two_processes(placement.key, 60)

    assert statuses.count(200) == 10
    assert day_spend(redis_client, campaign.pk) == Decimal("0.05")


def test_far_from_its_end_a_budget_is_charged_without_waiting(redis_client: Redis) -> None:
    make_placement(floor=Decimal("4.99"))
    campaign = make_campaign(daily_budget=Decimal("1000.00"))
    make_line_item(campaign, "5.00")
    publish_snapshot()

    async def go() -> list[object]:
        app = ServingApp(config())
        await app.startup()
        try:
            index = app.store.index
            assert index is not None
            li = next(iter(index.line_items.values()))
            # 5,000,000 nanos a win: 0.1 % of the 1,000.00 left is 200 wins unconfirmed.
            return [app.store.spend.charge_win(app.sink, li, 5_000_000, int(time.time()))
                    for _ in range(3)]  # fmt: skip
        finally:
            await app.shutdown()

    assert asyncio.run(go()) == [None, None, None]
    assert day_spend(redis_client, campaign.pk) == Decimal("0.015")
