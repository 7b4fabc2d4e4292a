"""Redis spend counters against the rollups (the truth): repaired after Redis loses them,
left alone when they are ahead (wins not rendered or not rolled up yet), released when a won
impression never comes; the controller picks up from the database after a restart."""

import time
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from redis import Redis

from campaigns import services
from campaigns.models import Campaign, LineItem
from campaigns.pacing.ledger import Counters, parse_counters
from campaigns.pacing.services import reconcile_spend, run_pacing
from campaigns.snapshot import redis_keys
from reporting.models import HourlyRollup
from tests.factories import make_campaign, make_line_item, make_placement

pytestmark = pytest.mark.django_db

NANOS = 1_000_000_000


def counters(redis_client: Redis, campaign: Campaign, day: str = "") -> Counters:
    keys = redis_keys()
    key = keys.lifetime_spend(campaign.pk) if day == "life" else keys.spend(day, campaign.pk)
    return parse_counters(redis_client.hgetall(key))


def rollup(li: LineItem, hour: datetime, spend: str, impressions: int, clicks: int = 0) -> None:
    HourlyRollup.objects.create(
        hour=hour, placement_id=1, line_item_id=li.pk, campaign_id=li.campaign_id,
        advertiser_id=li.campaign.advertiser_id, impressions=impressions, clicks=clicks,
        spend=Decimal(spend),
    )  # fmt: skip


@pytest.fixture
def booked() -> tuple[Campaign, LineItem, datetime]:
    now = timezone.now().replace(hour=12, minute=30, second=0, microsecond=0)
    campaign = make_campaign(daily_budget=Decimal("5.00"), start_at=now - timedelta(days=5))
    li = make_line_item(campaign, "5.00")
    rollup(li, now.replace(hour=3), "1.25", 250)
    rollup(li, now.replace(hour=11), "2.00", 400, clicks=3)
    rollup(li, now - timedelta(days=2), "7.00", 1400)  # an earlier day: lifetime only
    return campaign, li, now


def test_a_wiped_redis_is_restored_from_the_rollups(
    booked: tuple[Campaign, LineItem, datetime], redis_client: Redis
) -> None:
    campaign, li, now = booked
    day = now.strftime("%Y%m%d")

    result = reconcile_spend(now)

    today = counters(redis_client, campaign, day)
    life = counters(redis_client, campaign, "life")
    assert (today.spend, today.impressions, today.clicks) == (3_250_000_000, 650, 3)
    assert today.line_spend == {li.pk: 3_250_000_000}
    assert (life.spend, life.impressions) == (10_250_000_000, 2050)
    assert result.repaired == 3_250_000_000 + 10_250_000_000
    assert today.reconciled_at == now.timestamp()


def test_counters_ahead_of_the_rollups_are_left_alone(
    booked: tuple[Campaign, LineItem, datetime], redis_client: Redis
) -> None:
    campaign, li, now = booked
    day = now.strftime("%Y%m%d")
    key = redis_keys().spend(day, campaign.pk)
    # serving charged more than is rolled up yet: wins in flight and a pending one
    minute = int(time.time() // 60)
    redis_client.hset(
        key,
        mapping={"s": 4_000_000_000, f"s:{li.pk}": 4_000_000_000, "i": 800,
                 f"p:{li.pk}:{minute}": 5_000_000},
    )  # fmt: skip

    reconcile_spend(now)

    today = counters(redis_client, campaign, day)
    assert (today.spend, today.impressions) == (4_000_000_000, 800)
    assert today.pending == {(li.pk, minute): 5_000_000}


def test_a_win_never_rendered_is_released_after_the_token_lifetime(
    booked: tuple[Campaign, LineItem, datetime], redis_client: Redis, settings: object
) -> None:
    campaign, li, now = booked
    day = now.strftime("%Y%m%d")
    old = int((time.time() - 2 * 3600) // 60)
    key = redis_keys().spend(day, campaign.pk)
    redis_client.hset(
        key,
        mapping={"s": 3_255_000_000, f"s:{li.pk}": 3_255_000_000, "i": 651,
                 f"p:{li.pk}:{old}": 5_000_000},
    )  # fmt: skip
    redis_client.hset(redis_keys().lifetime_spend(campaign.pk), "s", 10_255_000_000)

    result = reconcile_spend(now)

    today = counters(redis_client, campaign, day)
    assert result.released == 5_000_000
    assert (today.spend, today.pending) == (3_250_000_000, {})
    assert counters(redis_client, campaign, "life").spend == 10_250_000_000


def test_yesterday_s_late_rollups_still_count_in_the_lifetime_totals(
    booked: tuple[Campaign, LineItem, datetime], redis_client: Redis
) -> None:
    campaign, li, now = booked
    midnight = now.replace(hour=0, minute=30)
    reconcile_spend(midnight)  # the day's first reconciliation sums the settled days once
    assert counters(redis_client, campaign, "life").spend == 10_250_000_000
    # yesterday's last hour rolled up only after that (ingestion lags): it still counts
    rollup(li, now.replace(hour=0) - timedelta(hours=1), "0.50", 100)
    redis_client.delete(redis_keys().lifetime_spend(campaign.pk))  # Redis lost it meanwhile

    reconcile_spend(now)

    assert counters(redis_client, campaign, "life").spend == 10_750_000_000  # + 0.50
    assert counters(redis_client, campaign, now.strftime("%Y%m%d")).spend == 3_250_000_000


def test_the_budget_is_marked_spent_when_the_rollups_say_so_and_freed_when_it_is_raised(
    booked: tuple[Campaign, LineItem, datetime], redis_client: Redis
) -> None:
    campaign, li, now = booked
    day = now.strftime("%Y%m%d")
    rollup(li, now.replace(hour=12), "1.75", 350)  # 5.00 today: the daily budget

    reconcile_spend(now)
    assert redis_client.sismember(redis_keys().exhausted(day), str(campaign.pk))

    services.update_campaign(campaign, daily_budget=Decimal("8.00"))
    reconcile_spend(now)
    assert not redis_client.sismember(redis_keys().exhausted(day), str(campaign.pk))


def test_the_controller_repairs_a_day_it_finds_unreconciled_before_steering(
    booked: tuple[Campaign, LineItem, datetime], redis_client: Redis
) -> None:
    campaign, li, now = booked
    rollup(li, now.replace(hour=12), "1.75", 350)  # the budget is spent
    day = now.strftime("%Y%m%d")

    # Redis restarted: no counters, no rates, no state
    run = run_pacing(now)

    assert run.reconciled == 1
    assert counters(redis_client, campaign, day).spend == 5 * NANOS
    assert redis_client.sismember(redis_keys().exhausted(day), str(campaign.pk))
    assert redis_client.hget(redis_keys().pacing_rates, str(li.pk)) == b"0.000000"


def test_serving_counters_survive_a_redis_restart_through_the_rollups(
    redis_client: Redis,
) -> None:
    from reporting.ingest import ingest_events
    from tests.conftest import run
    from tests.serving.test_app import ad_body, config

    placement = make_placement(floor=Decimal("4.99"))
    campaign = make_campaign(daily_budget=Decimal("10"))
    make_line_item(campaign, "5.00")
    from campaigns.snapshot import publish_snapshot

    publish_snapshot()

    async def serve() -> None:
        import httpx

        from serving.app import ServingApp

        app = ServingApp(config())
        await app.startup()
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://ads.test") as c:
                for _ in range(3):
                    body = (await c.post("/v1/ad", json=ad_body(placement.key))).json()
                    url = body["decisions"][0]["impression_url"]
                    await c.get(url.replace("http://127.0.0.1:8000", ""))
        finally:
            await app.shutdown()

    run(serve())
    ingest_events()
    day = time.strftime("%Y%m%d", time.gmtime())
    before = counters(redis_client, campaign, day)
    for key in redis_client.scan_iter(match=f"{redis_keys().prefix}spend:*"):
        redis_client.delete(key)

    reconcile_spend(timezone.now())

    after = counters(redis_client, campaign, day)
    assert (
        (after.spend, after.impressions)
        == (before.spend, before.impressions)
        == (
            15_000_000,
            3,
        )
    )
