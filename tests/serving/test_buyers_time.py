"""The buyer pool and time: the round's deadline, each buyer's own timeout, calls in parallel
and kept-alive connections, against real HTTP buyers on 127.0.0.1."""

import time
from collections.abc import Callable

from serving.buyers.outcomes import BuyerRound
from serving.buyers.pool import BuyerPool
from tests.serving.buyer_helpers import context, counts, one_round, snap, with_pool
from tests.serving.buyer_server import Behaviour, LoopbackBuyer

# How late past its deadline a round may return on a loaded machine: far less than the
# hung buyer's own timeout (1 s), which a round waiting for it would take.
SLACK = 0.4

# -- time ------------------------------------------------------------------------------


def test_a_late_buyer_is_dropped_without_holding_the_round_past_the_deadline(
    buyer: LoopbackBuyer, start_buyer: Callable[..., LoopbackBuyer]
) -> None:
    hung = start_buyer(Behaviour(hang=True))
    ctx = context()

    async def scenario(pool: BuyerPool) -> tuple[BuyerRound, float, float, dict[str, float]]:
        deadline = time.monotonic() + 0.08
        result = await pool.solicit(
            ctx, [snap(buyer), snap(hung, 2, timeout_ms=1000)], ctx.imps, deadline
        )
        return result, time.monotonic(), deadline, pool.stats()

    result, returned, deadline, stats = with_pool(scenario)

    assert returned <= deadline + SLACK
    assert [b.buyer_id for b in result.bids] == [1]
    assert [o.outcome for o in result.outcomes] == ["bid", "timeout"]
    assert counts(stats) == {"1:request": 1, "1:bid": 1, "2:request": 1, "2:timeout": 1}
    assert "2:latency_count" not in stats  # no answer, no latency sample


def test_a_buyer_is_cut_off_at_its_own_timeout(buyer: LoopbackBuyer) -> None:
    # The buyer answers after 1.5 s, well inside the round's 3 s: only its own 30 ms timeout
    # can make it a timeout (waiting for it would have given a bid).
    buyer.behaviour = Behaviour(delay_ms=1500)

    async def scenario(pool: BuyerPool) -> BuyerRound:
        return await one_round(pool, [snap(buyer, timeout_ms=30)], budget=3.0)

    result = with_pool(scenario)

    assert result.outcomes[0].outcome == "timeout"
    assert result.bids == []


def test_buyers_are_called_in_parallel(start_buyer: Callable[..., LoopbackBuyer]) -> None:
    # Each buyer takes 0.8 s and the round allows 1.2 s: called one after the other, the
    # second would miss the deadline; called together, both bid.
    slow = [start_buyer(Behaviour(delay_ms=800)) for _ in range(2)]

    async def scenario(pool: BuyerPool) -> BuyerRound:
        return await one_round(
            pool, [snap(s, n + 1, timeout_ms=1200) for n, s in enumerate(slow)], budget=1.2
        )

    result = with_pool(scenario)

    assert [o.outcome for o in result.outcomes] == ["bid", "bid"]
    assert len(result.bids) == 2


def test_the_outbound_tmax_fits_inside_the_inbound_one_and_the_headers_say_openrtb_2_6(
    buyer: LoopbackBuyer,
) -> None:
    ctx = context(tmax=200)

    async def scenario(pool: BuyerPool) -> BuyerRound:
        # The orchestrator keeps part of the caller's 200 ms for itself.
        return await pool.solicit(ctx, [snap(buyer)], ctx.imps, time.monotonic() + 0.15)

    with_pool(scenario)

    received = buyer.last
    assert 0 < received.body["tmax"] < 150  # below the deadline, so below the caller's 200
    assert received.headers["Content-Type"] == "application/json"
    assert received.headers["x-openrtb-version"] == "2.6"
    assert received.body["id"] == "req-1"


def test_a_buyer_is_not_called_when_too_little_time_is_left(buyer: LoopbackBuyer) -> None:
    ctx = context()

    async def scenario(pool: BuyerPool) -> BuyerRound:
        return await pool.solicit(ctx, [snap(buyer)], ctx.imps, time.monotonic() + 0.004)

    result = with_pool(scenario)

    assert result.outcomes[0].outcome == "no_time"
    assert buyer.request_count() == 0


def test_connections_to_a_buyer_are_kept_alive(buyer: LoopbackBuyer) -> None:
    async def scenario(pool: BuyerPool) -> None:
        for _ in range(3):
            await one_round(pool, [snap(buyer)])

    with_pool(scenario)

    assert len({r.client_port for r in buyer.requests}) == 1
