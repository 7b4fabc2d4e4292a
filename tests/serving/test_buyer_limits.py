"""A buyer's circuit breaker and QPS cap: one process's own (`serving.limits.local`, a pool on
its own) against real HTTP buyers on 127.0.0.1, and the fleet's (`serving.limits.fleet`) on
real Redis, with several pools or limiters each on an event sink of its own, as separate
processes have. Across real processes: tests/serving/test_fleet_limits.py."""

import asyncio
import time
from collections import Counter

from django.conf import settings
from redis import Redis

from serving.buyers.pool import BuyerPool
from serving.events import EventSink
from serving.keys import RedisKeys
from serving.limits.fleet import IDLE_SYNCS, FleetBreakers, FleetLimits, FleetQps
from serving.limits.local import TokenBucket
from tests.serving.buyer_helpers import (
    FX,
    LOOPBACK,
    counts,
    one_round,
    snap,
    with_pool,
)
from tests.serving.buyer_server import Behaviour, LoopbackBuyer, closed_port

KEYS = RedisKeys(settings.REDIS_KEY_PREFIX)


def sinks(n: int, url: str | None = None) -> list[EventSink]:
    """Event sinks of their own, each with its own connection, like n serving processes."""
    return [EventSink(url or settings.REDIS_URL, KEYS.events, timeout=0.5) for _ in range(n)]


# -- circuit breaker and QPS cap -------------------------------------------------------


def test_the_circuit_opens_after_consecutive_failures_and_closes_after_a_good_probe(
    buyer: LoopbackBuyer,
) -> None:
    buyer.behaviour = Behaviour(status=500)
    target = snap(buyer)

    async def scenario(pool: BuyerPool) -> tuple[list[str], int, str, str, bool]:
        failing = [(await one_round(pool, [target])).outcomes[0].outcome for _ in range(4)]
        calls_while_open = buyer.request_count()
        await asyncio.sleep(1.1)  # the cooldown
        buyer.behaviour = Behaviour()
        probe = (await one_round(pool, [target])).outcomes[0].outcome
        after = (await one_round(pool, [target])).outcomes[0].outcome
        return failing, calls_while_open, probe, after, pool.breaker(1).is_closed

    failing, calls_while_open, probe, after, closed = with_pool(
        scenario, breaker_failures=3, breaker_cooldown=1.0
    )

    assert failing == ["http_500", "http_500", "http_500", "circuit_open"]
    assert calls_while_open == 3
    assert (probe, after, closed) == ("bid", "bid", True)
    assert buyer.request_count() == 5


def test_a_failed_probe_opens_the_circuit_again(buyer: LoopbackBuyer) -> None:
    buyer.behaviour = Behaviour(status=503)
    target = snap(buyer)

    async def scenario(pool: BuyerPool) -> list[str]:
        outcomes = [(await one_round(pool, [target])).outcomes[0].outcome for _ in range(2)]
        await asyncio.sleep(1.1)
        for _ in range(2):
            outcomes.append((await one_round(pool, [target])).outcomes[0].outcome)
        return outcomes

    outcomes = with_pool(scenario, breaker_failures=2, breaker_cooldown=1.0)

    assert outcomes == ["http_503", "http_503", "http_503", "circuit_open"]
    assert buyer.request_count() == 3


def test_half_open_lets_one_probe_through(buyer: LoopbackBuyer) -> None:
    buyer.behaviour = Behaviour(raw=b"not json")
    target = snap(buyer)

    async def scenario(pool: BuyerPool) -> list[str]:
        await one_round(pool, [target])
        await asyncio.sleep(1.1)
        buyer.behaviour = Behaviour(delay_ms=30)
        rounds = await asyncio.gather(one_round(pool, [target]), one_round(pool, [target]))
        return sorted(r.outcomes[0].outcome for r in rounds)

    assert with_pool(scenario, breaker_failures=1, breaker_cooldown=1.0) == [
        "bid",
        "circuit_open",
    ]


def test_refusals_do_not_open_the_circuit(buyer: LoopbackBuyer) -> None:
    buyer.behaviour = Behaviour(status=400)

    async def scenario(pool: BuyerPool) -> list[str]:
        return [(await one_round(pool, [snap(buyer)])).outcomes[0].outcome for _ in range(3)]

    assert with_pool(scenario, breaker_failures=2) == ["http_400"] * 3


def test_the_qps_cap_limits_calls_per_process(buyer: LoopbackBuyer) -> None:
    target = snap(buyer, qps_cap=2)

    async def scenario(pool: BuyerPool) -> tuple[list[str], dict[str, float]]:
        outcomes = [(await one_round(pool, [target])).outcomes[0].outcome for _ in range(4)]
        return outcomes, pool.stats()

    outcomes, stats = with_pool(scenario)

    assert outcomes == ["bid", "bid", "qps_cap", "qps_cap"]
    assert buyer.request_count() == 2
    assert counts(stats) == {"1:request": 2, "1:bid": 2, "1:qps_cap": 2}


def test_the_token_bucket_refills_at_the_cap_rate() -> None:
    bucket = TokenBucket(rate=4, tokens=4.0, updated=100.0)

    taken = [bucket.take(100.0) for _ in range(5)]

    assert taken == [True, True, True, True, False]
    assert not bucket.take(100.125)  # half a token
    assert bucket.take(100.25)
    assert not bucket.take(100.25)
    assert bucket.take(200.0) and bucket.tokens == 3  # a long pause refills one second's worth


# -- the fleet's QPS cap ---------------------------------------------------------------


def test_limiters_on_sinks_of_their_own_never_take_more_than_the_cap_in_a_second() -> None:
    cap = 50

    async def go() -> Counter[int]:
        own = sinks(2)
        limiters = [FleetQps(sink, KEYS) for sink in own]
        granted: Counter[int] = Counter()
        start = int(time.time()) + 1
        await asyncio.sleep(start - time.time())
        try:
            # each wants 200 calls a second (400 for the fleet) for three seconds
            while (now := time.time()) < start + 3:
                for limiter in limiters:
                    if limiter.take(7, cap, now):
                        granted[int(now) - start] += 1
                await asyncio.sleep(0.005)
        finally:
            for sink in own:
                await sink.close()
        return granted

    granted = asyncio.run(go())

    assert max(granted.values()) <= cap
    assert [granted[s] for s in (1, 2)] == [cap, cap]  # claimed ahead: the whole cap, spent


def test_a_limiter_that_cannot_reach_redis_calls_at_most_once_a_second() -> None:
    async def go() -> list[bool]:
        [sink] = sinks(1, f"redis://127.0.0.1:{closed_port()}/0")
        limiter = FleetQps(sink, KEYS)
        try:
            await asyncio.sleep(int(time.time()) + 1.05 - time.time())
            taken = []
            for _ in range(20):
                taken.append(limiter.take(7, 100, time.time()))
                await asyncio.sleep(0.01)
            return taken
        finally:
            await sink.close()

    # the first call of the second on credit; its claim fails, and the second is over for it
    assert asyncio.run(go()) == [True] + [False] * 19


def test_a_pool_with_a_fleet_calls_within_the_tokens_it_claimed(buyer: LoopbackBuyer) -> None:
    target = snap(buyer, qps_cap=3)

    async def go() -> tuple[list[str], dict[str, float]]:
        [sink] = sinks(1)
        fleet = FleetLimits(sink, KEYS)
        pool = BuyerPool(currency="USD", fx=FX, fetch_policy=LOOPBACK, fleet=fleet)

        async def outcome() -> str:
            return (await one_round(pool, [target])).outcomes[0].outcome

        try:
            await asyncio.sleep(int(time.time()) + 1.05 - time.time())  # early in a second
            outcomes = [await outcome()]  # nothing claimed: on credit
            await sink.drain()  # the credit counted, nothing more asked (no traffic before)
            outcomes.append(await outcome())  # no token: skipped, and claims some
            await sink.drain()
            outcomes += [await outcome() for _ in range(3)]
            return outcomes, pool.stats()
        finally:
            await pool.close()
            await sink.close()

    outcomes, stats = asyncio.run(go())

    # the cap's other two calls, then nothing left in this second
    assert outcomes == ["bid", "qps_cap", "bid", "bid", "qps_cap"]
    assert counts(stats) == {"1:request": 3, "1:bid": 3, "1:qps_cap": 2}


def test_sparse_calls_each_the_first_of_its_second_are_not_refused(redis_client: Redis) -> None:
    async def go() -> list[bool]:
        [sink] = sinks(1)
        limiter = FleetQps(sink, KEYS)
        try:
            taken = []
            for _ in range(3):  # one call every 1.1 s
                taken.append(limiter.take(7, 5, time.time()))
                await asyncio.sleep(1.1)
            return taken
        finally:
            await sink.close()

    assert asyncio.run(go()) == [True, True, True]


# -- the fleet's circuit breaker -------------------------------------------------------


def breakers(sink: EventSink) -> FleetBreakers:
    return FleetBreakers(sink, KEYS, error_rate=0.5, min_calls=10, window=10, cooldown=30.0)


def test_one_process_s_failures_open_the_circuit_for_another_at_its_next_sync(
    redis_client: Redis,
) -> None:
    async def go() -> tuple[bool, bool, bool, bool]:
        own = sinks(2)
        failing, other = breakers(own[0]), breakers(own[1])
        try:
            other.record(7, False)  # the other process calls the buyer too, successfully
            for n in range(12):
                failing.record(7, n % 4 != 0)  # 9 failures in 12 calls: 75 %
            now = time.time()
            other.sync(now)
            await own[1].drain()
            before = other.is_open(7, now)
            failing.sync(now)
            await own[0].drain()
            other.sync(now)
            await own[1].drain()
            return before, failing.is_open(7, now), other.is_open(7, now), other.is_open(8, now)
        finally:
            for sink in own:
                await sink.close()

    before, failing_open, other_open, unknown = asyncio.run(go())

    assert (before, failing_open, other_open, unknown) == (False, True, True, False)
    assert 29_000 < int(redis_client.pttl(KEYS.buyer_breaker_open(7))) <= 30_000
    assert not redis_client.exists(KEYS.buyer_breaker(7))  # counted afresh after the cooldown


def test_too_few_calls_or_too_few_failures_leave_the_circuit_closed(redis_client: Redis) -> None:
    async def go() -> list[bool]:
        [sink] = sinks(1)
        fleet = breakers(sink)
        try:
            for _ in range(9):  # all failed, but under the 10 calls it takes
                fleet.record(7, True)
            for n in range(20):  # 40 % failed
                fleet.record(8, n % 5 < 2)
            now = time.time()
            fleet.sync(now)
            await sink.drain()
            return [fleet.is_open(7, now), fleet.is_open(8, now)]
        finally:
            await sink.close()

    assert asyncio.run(go()) == [False, False]
    assert not redis_client.exists(KEYS.buyer_breaker_open(7), KEYS.buyer_breaker_open(8))


def test_a_pool_skips_a_buyer_whose_fleet_circuit_is_open(buyer: LoopbackBuyer) -> None:
    async def go() -> tuple[str, str, str]:
        [sink] = sinks(1)
        fleet = FleetLimits(sink, KEYS, min_calls=1, cooldown=30.0)
        pool = BuyerPool(currency="USD", fx=FX, fetch_policy=LOOPBACK, fleet=fleet)
        try:
            buyer.behaviour = Behaviour(status=500)
            failed = (await one_round(pool, [snap(buyer)])).outcomes[0]
            fleet.breakers.sync(time.time())
            await sink.drain()
            buyer.behaviour = Behaviour()
            skipped = (await one_round(pool, [snap(buyer)])).outcomes[0]
            return failed.outcome, skipped.outcome, skipped.detail
        finally:
            await pool.close()
            await sink.close()

    assert asyncio.run(go()) == ("http_500", "circuit_open", "fleet")
    assert buyer.request_count() == 1


def test_a_buyer_not_called_lately_is_synced_again_with_its_next_call() -> None:
    async def go() -> tuple[list[int], int]:
        [sink] = sinks(1)
        fleet = breakers(sink)
        try:
            fleet.record(7, False)
            sent = []
            for _ in range(IDLE_SYNCS + 3):
                before = sink.pending
                fleet.sync(time.time())
                sent.append(sink.pending - before)
                await sink.drain()
            fleet.record(7, False)
            fleet.sync(time.time())
            resumed = sink.pending
            await sink.drain()
            return sent, resumed
        finally:
            await sink.close()

    sent, resumed = asyncio.run(go())

    assert sent == [1] * (IDLE_SYNCS + 1) + [0, 0]
    assert resumed == 1
