"""Dynamic-down bids in serving: the controller's multiplier lowers what a line item bids,
never below its minimum bid and never above its booked bid, and the scan still finds the
real winner when a lowered bid sits early in a list sorted by booked bids."""

from decimal import Decimal
from typing import Any

import httpx
import pytest
from redis import Redis

from campaigns import services
from campaigns.models import BidStrategy
from campaigns.snapshot import publish_snapshot, redis_keys
from serving.app import ServingApp
from serving.engine import Decision, Outcome, decide
from serving.ids import decision_rng
from serving.targeting import PacingRates, RequestState
from tests.factories import make_campaign, make_line_item, make_placement
from tests.serving.test_app import ad_body, with_client
from tests.serving.test_engine import NOW, PLACEMENT, ctx, index_of, li

D = Decimal


def decide_with(
    index: Any, multipliers: dict[int, Decimal], exhausted: frozenset[int] = frozenset()
) -> Outcome:
    context = ctx()
    state = RequestState.of(
        context,
        now=NOW,
        exhausted=frozenset(),
        pacing=PacingRates(multipliers=multipliers, exhausted=exhausted),
        rng=decision_rng(context.request_id),
        caps=None,
    )
    return decide(index, PLACEMENT, context, state)


def winner(d: Decision) -> int:
    assert d.line_item is not None
    return d.line_item.id


def dynamic(id: int, bid: str, min_bid: str, **fields: Any) -> Any:
    return li(id, bid, bid_strategy="dynamic_down", min_bid=D(min_bid), **fields)


def test_a_lowered_bid_loses_to_a_lower_booked_bid_and_sets_its_price() -> None:
    index = index_of(dynamic(1, "8.00", "3.00"), li(2, "6.00"), li(3, "2.00"))

    [booked] = decide_with(index, {}).decisions
    [lowered] = decide_with(index, {1: D("0.5")}).decisions

    assert (winner(booked), booked.price) == (1, D("6.01"))
    # 8.00 x 0.5 = 4.00: the line item sorted first bids below the second one, which wins
    # and pays the lowered bid plus a cent
    assert (winner(lowered), lowered.price) == (2, D("4.01"))


def test_a_multiplier_never_takes_the_bid_below_the_minimum_bid() -> None:
    index = index_of(dynamic(1, "8.00", "5.00"), li(2, "4.00"))
    [d] = decide_with(index, {1: D("0.1")}).decisions
    assert (winner(d), d.price) == (1, D("4.01"))  # bids 5.00, not 0.80
    [d] = decide_with(index_of(dynamic(1, "8.00", "5.00"), li(2, "6.00")), {1: D("0.1")}).decisions
    assert winner(d) == 2


def test_a_multiplier_of_a_fixed_line_item_or_above_one_changes_nothing() -> None:
    index = index_of(li(1, "8.00"), dynamic(2, "7.00", "1.00"), li(3, "6.00"))
    [d] = decide_with(index, {1: D("0.2"), 2: D("1.5")}).decisions
    assert (winner(d), d.price) == (1, D("7.01"))  # dynamic bids never go up


def test_the_scan_walks_past_lowered_bids_to_the_real_runner_up() -> None:
    index = index_of(
        dynamic(1, "9.00", "1.00"), dynamic(2, "8.50", "1.00"), li(3, "7.00"), li(4, "5.00")
    )
    [d] = decide_with(index, {1: D("0.5"), 2: D("0.6")}).decisions
    # effective bids 4.50, 5.10, 7.00, 5.00: 7.00 wins at the best other bid, 5.10, + 0.01
    assert (winner(d), d.price) == (3, D("5.11"))


def test_a_line_item_out_of_its_own_budget_is_turned_away_for_budget() -> None:
    index = index_of(li(1, "8.00"), li(2, "6.00"))
    outcome = decide_with(index, {}, exhausted=frozenset({1}))
    assert winner(outcome.decisions[0]) == 2
    assert (1, "budget_exhausted") in outcome.rejected


@pytest.mark.django_db
def test_serving_reads_the_multipliers_the_controller_writes(redis_client: Redis) -> None:
    placement = make_placement(floor=Decimal("1.00"))
    campaign = make_campaign()
    dyn = make_line_item(campaign, "8.00")
    services.update_line_item(dyn, bid_strategy=BidStrategy.DYNAMIC_DOWN, min_bid=Decimal("2.00"))
    other = make_line_item(make_campaign(), "5.00")
    publish_snapshot()

    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> list[int]:
        before = (await client.post("/v1/ad", json=ad_body(placement.key))).json()
        redis_client.hset(redis_keys().bid_multipliers, str(dyn.pk), "0.5000")
        await app.store.refresh()
        after = (await client.post("/v1/ad", json=ad_body(placement.key))).json()
        return [before["decisions"][0]["line_item"], after["decisions"][0]["line_item"]]

    assert with_client(scenario) == [dyn.pk, other.pk]
