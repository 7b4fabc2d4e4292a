"""Operations series on /metrics after real traffic through the serving app, on the real Redis
and Postgres: buyer answer latency and circuit state, the event sink's batch round trips,
ingest lag in seconds, per-campaign budget gauges and the reconciliation's drift."""

import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from django.conf import settings
from django.db.models import Sum
from django.test import Client
from django.utils import timezone
from redis import Redis

from campaigns import services
from campaigns.models import Advertiser, Campaign
from campaigns.pacing.services import campaign_pacing, reconcile_spend, run_pacing
from campaigns.snapshot import publish_snapshot
from reporting.ingest import ingest_events
from reporting.models import HourlyRollup
from serving.app import ServingApp
from serving.keys import RedisKeys, day_of
from serving.models import Buyer
from tests.factories import make_campaign, make_line_item, make_placement
from tests.reporting.test_metrics import samples
from tests.serving.buyer_server import Behaviour, LoopbackBuyer
from tests.serving.test_app import ad_body, with_client
from tests.serving.test_serving_path import openrtb_body

pytestmark = pytest.mark.django_db


def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = Client().get("/metrics")
    assert response.status_code == 200
    return samples(response.content.decode())


def serve(scenario: Callable[[httpx.AsyncClient], Awaitable[Any]]) -> Any:
    """Run `scenario` against a real serving app, then publish its figures and flush its
    buyer counters (both also happen every few seconds in a running process)."""

    async def go(client: httpx.AsyncClient, app: ServingApp) -> Any:
        result = await scenario(client)
        await app.sink.drain()
        await app.publish_metrics()
        await app.pool.flush_stats(app.redis, app.keys, day_of(time.time()))
        return result

    return with_client(go)


def test_buyer_latency_circuit_state_outcomes_and_redis_batches_reach_prometheus() -> None:
    placement = make_placement()
    make_line_item(make_campaign(), "0.50")
    with (
        LoopbackBuyer(Behaviour(delay_ms=60, bid={"price": "3.00"})) as slow,
        LoopbackBuyer(Behaviour(status=500)) as broken,
    ):
        slow_id = Buyer.objects.create(name="slow", endpoint=slow.endpoint, timeout_ms=500).pk
        broken_id = Buyer.objects.create(name="broken", endpoint=broken.endpoint, timeout_ms=500).pk
        publish_snapshot()

        async def scenario(client: httpx.AsyncClient) -> list[int]:
            statuses = []
            # Five 500s open the broken buyer's circuit (BuyerPool.breaker_failures); the
            # sixth request does not call it.
            for n in range(6):
                body = openrtb_body(placement.key, id=f"auction-{n}")
                statuses.append((await client.post("/openrtb2/auction", json=body)).status_code)
            return statuses

        assert serve(scenario) == [200] * 6
        assert len(broken.requests) == 5

    got = scrape()
    response = "adsplatform_buyer_response_seconds"
    slow_buyer, broken_buyer = (("buyer", str(slow_id)),), (("buyer", str(broken_id)),)
    assert got[f"{response}_count", slow_buyer] == 6
    # Every slow answer took over 60 ms: none in the 50 ms bucket, all in the 300 ms one.
    assert got[f"{response}_bucket", (*slow_buyer, ("le", "0.05"))] == 0
    assert got[f"{response}_bucket", (*slow_buyer, ("le", "0.3"))] == 6
    assert 6 * 0.06 <= got[f"{response}_sum", slow_buyer] < 6 * 0.3
    assert got[f"{response}_count", broken_buyer] == 5  # a 500 is an answer, timed
    state = "adsplatform_buyer_circuit_state"
    assert got[state, slow_buyer] == 0  # closed
    assert got[state, broken_buyer] == 1  # open, cooling down
    outcomes = "adsplatform_buyer_outcomes_total"
    for labels, n in (
        ((*slow_buyer, ("outcome", "request")), 6),
        ((*slow_buyer, ("outcome", "bid")), 6),
        ((*broken_buyer, ("outcome", "request")), 5),
        ((*broken_buyer, ("outcome", "http_500")), 5),
        ((*broken_buyer, ("outcome", "circuit_open")), 1),
    ):
        assert got[outcomes, labels] == n, labels
    flushes = got["adsplatform_serving_redis_flush_duration_seconds_count", ()]
    assert flushes >= 1
    inf = got["adsplatform_serving_redis_flush_duration_seconds_bucket", (("le", "+Inf"),)]
    assert inf == flushes
    assert got["adsplatform_serving_redis_flush_failures_total", ()] == 0
    assert got["adsplatform_serving_sink_dropped_total", ()] == 0


def test_ingest_lag_in_seconds_is_the_age_of_the_oldest_event_not_rolled_up(
    redis_client: Redis,
) -> None:
    placement = make_placement()
    make_line_item(make_campaign(), "2.50")
    publish_snapshot()
    assert scrape()["adsplatform_ingest_lag_seconds", ()] == 0  # nothing in the stream

    async def scenario(client: httpx.AsyncClient) -> None:
        for _ in range(2):
            assert (await client.post("/v1/ad", json=ad_body(placement.key))).status_code == 200

    serve(scenario)
    keys = RedisKeys(settings.REDIS_KEY_PREFIX)
    entries: Any = redis_client.xrange(keys.events, count=1)
    first = int(entries[0][0].decode().split("-")[0]) / 1000
    before = timezone.now().timestamp() - first
    lag = scrape()["adsplatform_ingest_lag_seconds", ()]
    after = timezone.now().timestamp() - first
    assert before <= lag <= after

    ingest_events()

    assert scrape()["adsplatform_ingest_lag_seconds", ()] == 0


def _zones_either_side_of_18(now: datetime) -> tuple[str, str]:
    """A fixed-offset zone where it is before 18:00 now, and one where it is 18:00 or later
    (offsets from -11 to +14 hours span more than a day, so both exist)."""
    # Etc/GMT+N is N hours behind UTC (POSIX sign).
    zones = [f"Etc/GMT{-h:+d}" if h else "UTC" for h in range(-11, 15)]
    hours = {z: now.astimezone(ZoneInfo(z)).hour for z in zones}
    early = next(z for z in zones if 6 <= hours[z] < 17)
    late = next(z for z in zones if hours[z] >= 18)
    return early, late


def _campaign_in(zone: str, daily: str) -> tuple[Campaign, str]:
    name = f"Advertiser {zone} {Advertiser.objects.count()}"  # zones may repeat
    advertiser = Advertiser.objects.create(name=name, time_zone=zone)
    campaign = make_campaign(advertiser, daily_budget=Decimal(daily))
    services.update_campaign(campaign, lifetime_budget=Decimal("40.00"))
    # Alone on its placement, a 2.50 bid clears at the floor and a cent: 1.00 CPM, 0.001
    # an impression.
    placement = make_placement(floor=Decimal("0.99"))
    make_line_item(campaign, "2.50", placements=[placement])
    return campaign, placement.key


def _serve_impressions(keys: list[str]) -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        for key in keys:
            answer = await client.post("/v1/ad", json=ad_body(key))
            assert answer.status_code == 200, answer.text
            [decision] = answer.json()["decisions"]
            assert (await client.get(decision["impression_url"])).status_code == 200

    serve(scenario)


def test_campaign_budget_gauges_and_the_local_hour_a_budget_ran_out() -> None:
    now = timezone.now()
    early_zone, late_zone = _zones_either_side_of_18(now)
    # One impression spends the whole 0.001 daily budget.
    early, early_key = _campaign_in(early_zone, "0.001")
    late, late_key = _campaign_in(late_zone, "0.001")
    roomy, roomy_key = _campaign_in("UTC", "25.00")
    publish_snapshot()

    _serve_impressions([early_key, late_key, roomy_key])
    run_pacing(timezone.now())

    got = scrape()
    assert got["adsplatform_campaigns_live", ()] == 3
    assert got["adsplatform_campaigns_exported", ()] == 3
    ingest_events()  # the rollups hold the truth the gauges must agree with
    for campaign in (early, late, roomy):
        c = (("campaign", str(campaign.pk)), ("currency", "USD"))
        spend = HourlyRollup.objects.filter(campaign_id=campaign.pk).aggregate(s=Sum("spend"))["s"]
        assert spend > 0
        assert got["adsplatform_campaign_spend_today", c] == float(spend)
        assert got["adsplatform_campaign_lifetime_spend", c] == float(spend)
        assert got["adsplatform_campaign_daily_budget", c] == float(campaign.daily_budget)
        assert got["adsplatform_campaign_lifetime_budget", c] == 40.0
        pacing = campaign_pacing(campaign, timezone.now())
        rate = got["adsplatform_campaign_pacing_rate", c]
        assert abs(rate - pacing["pass_through"]) < 1e-4  # the API rounds it to 4 places
        assert got["adsplatform_campaign_budget_today", c] == float(pacing["budget_today"])
        info = (
            ("campaign", str(campaign.pk)), ("currency", "USD"), ("name", campaign.name),
            ("pacing_mode", campaign.pacing_mode), ("time_zone", campaign.advertiser.time_zone),
        )  # fmt: skip
        assert got["adsplatform_campaign_info", info] == 1

    def of(campaign: Campaign, name: str) -> float:
        labels = (("campaign", str(campaign.pk)), ("currency", "USD"))
        return got[f"adsplatform_campaign_{name}", labels]

    assert of(roomy, "budget_exhausted") == 0
    assert of(roomy, "exhausted_local_hour") == -1
    assert of(roomy, "exhausted_before_local_18") == 0
    for campaign, zone, early_flag in ((early, early_zone, 1), (late, late_zone, 0)):
        local = now.astimezone(ZoneInfo(zone))
        hour = local.hour + local.minute / 60
        assert of(campaign, "budget_exhausted") == 1
        assert hour - 0.1 <= of(campaign, "exhausted_local_hour") <= hour + 0.1
        assert of(campaign, "exhausted_before_local_18") == early_flag


def test_reconciliation_drift_and_repairs(redis_client: Redis) -> None:
    campaign, key = _campaign_in("UTC", "25.00")
    publish_snapshot()
    _serve_impressions([key])
    c = (("campaign", str(campaign.pk)), ("currency", "USD"))
    assert scrape()["adsplatform_reconcile_seconds_ago", ()] == -1

    # Served and charged, not rolled up yet: Redis is ahead of the rollups by the spend.
    reconcile_spend(timezone.now())
    spend_now = scrape()["adsplatform_campaign_spend_today", c]
    got = scrape()
    assert spend_now > 0
    assert got["adsplatform_campaign_reconcile_drift", c] == spend_now
    assert 0 <= got["adsplatform_reconcile_seconds_ago", ()] < 60

    ingest_events()
    reconcile_spend(timezone.now())
    assert scrape()["adsplatform_campaign_reconcile_drift", c] == 0

    # Redis loses the day's spend: the reconciliation sees it short and repairs it.
    keys = RedisKeys(settings.REDIS_KEY_PREFIX)
    day = timezone.now().strftime("%Y%m%d")
    redis_client.hdel(keys.spend(day, campaign.pk), "s")
    reconcile_spend(timezone.now())
    got = scrape()
    assert got["adsplatform_campaign_reconcile_drift", c] == -spend_now
    assert got["adsplatform_reconcile_repaired_total", (("currency", "USD"),)] == spend_now
    assert got["adsplatform_campaign_spend_today", c] == spend_now


def test_campaign_series_are_bounded_by_the_limit(
    settings: Any, django_assert_num_queries: Any
) -> None:
    settings.METRICS_CAMPAIGN_LIMIT = 2
    for _ in range(3):
        make_campaign()
    make_campaign(active=False)  # not live: never exported

    with django_assert_num_queries(2):  # the page of campaigns, and their count at the limit
        got = scrape()
    assert got["adsplatform_campaigns_live", ()] == 3
    assert got["adsplatform_campaigns_exported", ()] == 2
    info = [labels for name, labels in got if name == "adsplatform_campaign_info"]
    assert len(info) == 2
