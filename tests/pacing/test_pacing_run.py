"""The controller's tick on the real database and Redis: the rates and caps it writes, how
pacing modes, lifetime budgets, goals and line-item budgets shape them, and the traffic shape
it learns from the rollups."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from redis import Redis

from campaigns import services
from campaigns.models import BidStrategy, Campaign, GoalType, LineItem, PacingMode
from campaigns.pacing.ledger import parse_counters
from campaigns.pacing.schedule import HOURS, UNIFORM, learn_shape, mode_fraction
from campaigns.pacing.services import run_pacing, schedule_for
from campaigns.snapshot import redis_keys
from reporting.models import HourlyRollup
from tests.factories import make_campaign, make_line_item

pytestmark = pytest.mark.django_db

NANOS = 1_000_000_000
NOON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
DAY = "20260302"


def campaign_at(budget: str = "100", **fields: object) -> tuple[Campaign, LineItem]:
    campaign = make_campaign(daily_budget=Decimal(budget), start_at=NOON - timedelta(days=3))
    if fields:
        services.update_campaign(campaign, **fields)
    return campaign, make_line_item(campaign, "5.00")


def spend(redis_client: Redis, campaign: Campaign, li: LineItem, nanos: int) -> None:
    key = redis_keys().spend(DAY, campaign.pk)
    redis_client.hincrby(key, "s", nanos)
    redis_client.hincrby(key, f"s:{li.pk}", nanos)
    redis_client.hincrby(redis_keys().lifetime_spend(campaign.pk), "s", nanos)


def rate(redis_client: Redis, li: LineItem) -> float:
    raw = redis_client.hget(redis_keys().pacing_rates, str(li.pk))
    return float(raw) if raw is not None else 1.0


def test_a_new_budget_probes_then_follows_its_demand(redis_client: Redis) -> None:
    campaign, li = campaign_at("100")
    # half the day gone (uniform traffic, no history), exactly on schedule
    spend(redis_client, campaign, li, 50 * NANOS)
    run_pacing(NOON)
    assert rate(redis_client, li) == pytest.approx(0.1)  # unknown demand: it starts low
    run_pacing(NOON)  # serving has had the 0.1 since the tick before (no lag to account for)

    # the next five minutes at 0.1 brought 0.10: ten times that at full rate, 1.00 per five
    # minutes, 288 a day for a budget that needs 100 and is on schedule: about a third
    spend(redis_client, campaign, li, NANOS // 10)
    run_pacing(NOON + timedelta(minutes=5))
    assert 0.3 < rate(redis_client, li) < 0.4


def test_ahead_of_schedule_it_throttles_behind_it_opens_up(redis_client: Redis) -> None:
    ahead, ahead_li = campaign_at("100")
    behind, behind_li = campaign_at("100")
    spend(redis_client, ahead, ahead_li, 60 * NANOS)
    spend(redis_client, behind, behind_li, 40 * NANOS)
    run_pacing(NOON)
    spend(redis_client, ahead, ahead_li, NANOS // 10)
    spend(redis_client, behind, behind_li, NANOS // 10)
    run_pacing(NOON + timedelta(minutes=5))
    assert rate(redis_client, ahead_li) == 0.0  # ten points ahead: nothing for a while
    assert rate(redis_client, behind_li) == 1.0  # ten points behind: everything it can get


def test_asap_is_never_throttled_and_capped_at_its_budget(redis_client: Redis) -> None:
    campaign, li = campaign_at("100", pacing_mode=PacingMode.ASAP)
    spend(redis_client, campaign, li, 90 * NANOS)
    run_pacing(NOON)
    assert rate(redis_client, li) == 1.0
    day = parse_counters(redis_client.hgetall(redis_keys().spend(DAY, campaign.pk)))
    assert day.caps == {"cap": 100 * NANOS}


def test_a_lifetime_budget_is_spread_over_the_days_left(redis_client: Redis) -> None:
    campaign, _ = campaign_at(
        "100", lifetime_budget=Decimal("250"), end_at=NOON + timedelta(days=2)
    )
    redis_client.hset(redis_keys().lifetime_spend(campaign.pk), "s", 100 * NANOS)
    run_pacing(NOON)
    day = parse_counters(redis_client.hgetall(redis_keys().spend(DAY, campaign.pk)))
    # 150 left over today and two more days (the flight ends at noon on the 4th)
    assert day.caps == {"cap": 50 * NANOS}


def test_an_impression_goal_caps_the_day(redis_client: Redis) -> None:
    campaign, _ = campaign_at(
        "100", goal_type=GoalType.IMPRESSIONS, goal_target=Decimal("30000"),
        end_at=NOON + timedelta(days=2),
    )  # fmt: skip
    run_pacing(NOON)
    day = parse_counters(redis_client.hgetall(redis_keys().spend(DAY, campaign.pk)))
    assert day.caps == {"cap": 100 * NANOS, "icap": 10_000}


def test_a_line_item_budget_gets_its_own_rate_under_the_campaign_s(redis_client: Redis) -> None:
    campaign, li = campaign_at("100")
    services.update_line_item(li, daily_budget=Decimal("10"))
    other = make_line_item(campaign, "3.00")
    spend(redis_client, campaign, li, 6 * NANOS)  # 60 % of its own budget at noon
    run_pacing(NOON)
    spend(redis_client, campaign, li, NANOS // 100)
    run_pacing(NOON + timedelta(minutes=5))
    assert rate(redis_client, li) == 0.0  # its own budget is well ahead
    assert rate(redis_client, other) > 0.0


def test_dynamic_bids_only_come_down_while_ahead(redis_client: Redis) -> None:
    campaign, li = campaign_at("100")
    services.update_line_item(li, bid_strategy=BidStrategy.DYNAMIC_DOWN, min_bid=Decimal("2"))
    spend(redis_client, campaign, li, 50 * NANOS)
    run_pacing(NOON)
    run_pacing(NOON)
    at = NOON
    multipliers = []
    for _ in range(6):  # plenty of demand: 4.00 per ten minutes at full rate, 576 a day
        at += timedelta(minutes=10)
        spend(redis_client, campaign, li, int(4 * NANOS * rate(redis_client, li)))
        run_pacing(at)
        raw = redis_client.hget(redis_keys().bid_multipliers, str(li.pk))
        multipliers.append(float(raw) if raw else 1.0)
    assert multipliers == sorted(multipliers, reverse=True)
    assert 0.4 <= multipliers[-1] < 1.0  # never below min_bid / bid = 0.4


def test_even_pacing_follows_the_traffic_the_rollups_saw() -> None:
    # the last week: three times more requests from 08:00 to 20:00 than at night
    for day in range(1, 8):
        for hour in range(HOURS):
            HourlyRollup.objects.create(
                hour=NOON.replace(hour=0) - timedelta(days=day) + timedelta(hours=hour),
                placement_id=1, line_item_id=0, campaign_id=0, advertiser_id=0,
                requests=300 if 8 <= hour < 20 else 100,
            )  # fmt: skip
    shape = learn_shape("UTC", NOON.replace(hour=0))
    assert shape[12] == pytest.approx(shape[2] * 3, rel=0.05)  # and a 2 % uniform floor
    assert sum(shape) == pytest.approx(1.0)
    campaign, _ = campaign_at("100")
    sched = schedule_for(campaign, NOON)
    # by noon: 8 quiet hours and 4 busy ones of 12 quiet and 12 busy: 20 / 48
    assert sched.fraction(NOON) == pytest.approx(20 / 48, abs=0.01)
    # no history: uniform
    assert learn_shape("UTC", NOON.replace(hour=0) - timedelta(days=30)) == UNIFORM


def test_frontloaded_schedules_more_early() -> None:
    assert mode_fraction(PacingMode.FRONTLOADED, 0.5) == pytest.approx(0.646, abs=0.001)
    assert mode_fraction(PacingMode.EVEN, 0.5) == 0.5
    assert mode_fraction(PacingMode.ASAP, 0.0) == 1.0
