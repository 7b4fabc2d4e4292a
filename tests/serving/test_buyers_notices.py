"""The buyer pool's win, billing and loss notices, markup read from a win notice, and its
counters flushed to Redis, against real HTTP buyers on 127.0.0.1 (loss notices after the
auction: test_loss_notices.py)."""

import time
from decimal import Decimal

from django.conf import settings
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from compliance.policy import PrivacySignals
from serving.buyers.counters import parse_buyer_stats
from serving.buyers.pool import BuyerPool
from serving.keys import RedisKeys
from serving.macros import macro_values
from serving.openrtb import LOSS_OUTBID
from tests.serving.buyer_helpers import context, counts, one_round, snap, with_pool
from tests.serving.buyer_server import Behaviour, LoopbackBuyer, closed_port

# -- notices ---------------------------------------------------------------------------


def test_win_billing_and_loss_notices_are_fired_with_macros_substituted(
    buyer: LoopbackBuyer,
) -> None:
    buyer.behaviour = Behaviour(bid={"price": "2.00"})

    async def scenario(pool: BuyerPool) -> None:
        [bid] = (await one_round(pool, [snap(buyer)])).bids
        won = macro_values(
            auction_id="req-1",
            bid_id=bid.bid_id,
            imp_id=bid.imp_id,
            seat_id=bid.seat,
            ad_id=None,
            currency=bid.currency,
            price=bid.in_buyer_currency(Decimal("1.23")),
        )
        lost = macro_values(
            auction_id="req-1",
            bid_id=bid.bid_id,
            imp_id=bid.imp_id,
            seat_id=bid.seat,
            ad_id=None,
            price=None,
            currency=bid.currency,
            loss=LOSS_OUTBID,
            min_to_win=Decimal("2.51"),
        )
        assert bid.nurl and bid.burl and bid.lurl
        pool.notify(bid.nurl, won, buyer_id=bid.buyer_id)
        pool.notify(bid.burl, won, buyer_id=bid.buyer_id)
        pool.notify(bid.lurl, lost, buyer_id=bid.buyer_id)
        await pool.drain_notices()

    with_pool(scenario)

    assert sorted(buyer.notice_paths()) == [
        "/bill?price=1.23&cur=USD&imp=1",
        "/loss?reason=102&min=2.51",
        "/win?price=1.23&cur=USD&imp=1",
    ]


def test_failed_notices_are_counted(buyer: LoopbackBuyer) -> None:
    buyer.behaviour = Behaviour(notice_status=500)

    async def scenario(pool: BuyerPool) -> dict[str, float]:
        pool.notify(
            f"{buyer.base_url}/win?p=${{AUCTION_PRICE}}", {"AUCTION_PRICE": "1"}, buyer_id=4
        )
        pool.notify(f"http://127.0.0.1:{closed_port()}/win", {}, buyer_id=4)
        pool.notify("javascript:alert(1)", {}, buyer_id=4)
        await pool.drain_notices()
        return pool.stats()

    assert with_pool(scenario) == {"4:notice_error": 3}
    assert buyer.notice_paths() == ["/win?p=1"]


def test_notices_in_flight_are_bounded(buyer: LoopbackBuyer) -> None:
    buyer.behaviour = Behaviour(notice_delay_ms=40)

    async def scenario(pool: BuyerPool) -> dict[str, float]:
        for n in range(3):
            pool.notify(f"{buyer.base_url}/win?n={n}", {}, buyer_id=1)
        await pool.drain_notices()
        return pool.stats()

    assert with_pool(scenario, max_notices_in_flight=2) == {"1:notice_dropped": 1}
    assert sorted(buyer.notice_paths()) == ["/win?n=0", "/win?n=1"]


def test_a_bid_without_adm_gets_its_markup_from_the_win_notice(buyer: LoopbackBuyer) -> None:
    buyer.behaviour = Behaviour(bid={"adm": None}, notice_body="<div>markup from nurl</div>")

    async def scenario(pool: BuyerPool) -> tuple[str | None, str | None, dict[str, float]]:
        [bid] = (await one_round(pool, [snap(buyer)])).bids
        assert bid.adm is None and bid.nurl
        values = {"AUCTION_PRICE": "1.01", "AUCTION_CURRENCY": "USD", "AUCTION_IMP_ID": "1"}
        markup = await pool.fetch_markup(bid.nurl, values, time.monotonic() + 0.2, buyer_id=1)
        buyer.behaviour = Behaviour(notice_status=404)
        missing = await pool.fetch_markup(bid.nurl, values, time.monotonic() + 0.2, buyer_id=1)
        return markup, missing, pool.stats()

    markup, missing, stats = with_pool(scenario)

    assert (markup, missing) == ("<div>markup from nurl</div>", None)
    assert buyer.notice_paths() == ["/win?price=1.01&cur=USD&imp=1"] * 2
    assert counts(stats) == {"1:request": 1, "1:bid": 1, "1:markup_error": 1}


# -- counters in Redis -----------------------------------------------------------------


def test_flush_stats_adds_the_counters_to_the_days_hash_and_clears_them(
    buyer: LoopbackBuyer, redis_client: Redis
) -> None:
    keys = RedisKeys(settings.REDIS_KEY_PREFIX)
    day = "20260315"

    async def scenario(pool: BuyerPool) -> list[dict[str, float]]:
        redis = AsyncRedis.from_url(settings.REDIS_URL)
        left = []
        try:
            for _ in range(2):
                await one_round(
                    pool,
                    [snap(buyer), snap(buyer, 2, supports_coppa=True)],
                    context(privacy=PrivacySignals(coppa=1)),
                )
                await pool.flush_stats(redis, keys, day)
                left.append(pool.stats())
        finally:
            await redis.aclose()
        return left

    left = with_pool(scenario)

    assert left == [{}, {}]
    stored = parse_buyer_stats(redis_client.hgetall(keys.buyer_stats(day)))
    assert stored[1] == {"coppa": 2}
    assert {k: v for k, v in stored[2].items() if k != "latency_ms_sum"} == {
        "request": 2,
        "bid": 2,
        "latency_count": 2,
    }
    assert stored[2]["latency_ms_sum"] >= 0
    assert redis_client.ttl(keys.buyer_stats(day)) > 0
