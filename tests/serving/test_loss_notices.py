"""Loss notices for every priced buyer bid that did not win (issue 13 item 1) and `badv` for
buyers (item 2), against real HTTP buyers on 127.0.0.1."""

import asyncio
import time
from typing import Any

import pytest

from serving.blocks import normalise_badv
from serving.buyers.pool import BuyerPool
from serving.context import DealRequest, Imp
from tests.serving.buyer_helpers import FLOOR, context, snap, with_pool
from tests.serving.buyer_server import Behaviour, LoopbackBuyer

DEALS = (DealRequest(id="deal-1", bidfloor=FLOOR),)


def losses(buyer: LoopbackBuyer) -> list[str]:
    return [p for p in buyer.notice_paths() if p.startswith("/loss")]


def round_and_notices(buyer: LoopbackBuyer, *, wait_for_late: bool = False, **ctx: Any) -> Any:
    async def scenario(pool: BuyerPool) -> Any:
        c = context(**ctx)
        result = await pool.solicit(c, [snap(buyer, timeout_ms=60)], c.imps, time.monotonic() + 0.3)
        deadline = time.monotonic() + 3
        while wait_for_late and not losses(buyer) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await pool.drain_notices()
        return result

    return with_pool(scenario)


@pytest.mark.parametrize(
    ("bid", "ctx", "notice"),
    [
        ({"price": "0.40"}, {}, "/loss?reason=100&min=0.50"),
        ({"adomain": ["Shop.BRAND.example"]}, {"badv": frozenset({"brand.example"})}, "205"),
        ({"adomain": None}, {"badv": frozenset({"brand.example"})}, "205"),
        ({"cat": ["iab7-39"]}, {"bcat": frozenset({"IAB7"})}, "209"),
        ({"dealid": "no-such-deal"}, {"imps": [Imp(id="1", sizes=(), deals=DEALS)]}, "4"),
        (
            {},
            {"imps": [Imp(id="1", sizes=(), private_auction=True, deals=DEALS)]},
            "213",  # a private auction, and the bid names no deal
        ),
        (
            {"price": "0.40", "dealid": "deal-1"},
            {"imps": [Imp(id="1", sizes=(), deals=DEALS)]},
            "/loss?reason=101&min=0.50",
        ),
        ({"impid": "no-such-imp"}, {}, "3"),
        ({"adm": None, "nurl": None}, {}, "7"),
    ],
)
def test_a_bid_dropped_before_the_auction_gets_its_loss_code(
    buyer: LoopbackBuyer, bid: dict[str, Any], ctx: dict[str, Any], notice: str
) -> None:
    buyer.behaviour = Behaviour(bid=bid)

    result = round_and_notices(buyer, **ctx)

    assert result.bids == []
    expected = notice if notice.startswith("/") else f"/loss?reason={notice}&min="
    assert losses(buyer) == [expected]


@pytest.mark.parametrize(
    ("behaviour", "code"),
    [
        (Behaviour(currency="EUR"), "3"),  # not the buyer's configured currency
        (Behaviour(response_id="not-our-request"), "5"),
    ],
)
def test_every_bid_of_an_answer_refused_whole_gets_a_loss_notice(
    buyer: LoopbackBuyer, behaviour: Behaviour, code: str
) -> None:
    behaviour.extra_bids = [{"id": "bid-2"}]
    buyer.behaviour = behaviour

    round_and_notices(buyer)

    assert losses(buyer) == [f"/loss?reason={code}&min="] * 2


def test_a_late_bid_gets_loss_2_after_the_round_without_holding_it(buyer: LoopbackBuyer) -> None:
    buyer.behaviour = Behaviour(delay_ms=150)

    started = time.monotonic()
    result = round_and_notices(buyer, wait_for_late=True)

    assert result.bids == [] and result.outcomes[0].outcome == "timeout"
    assert losses(buyer) == ["/loss?reason=2&min="]
    assert time.monotonic() - started < 2


def test_a_bid_without_a_price_is_not_a_priced_bid_and_gets_no_notice(
    buyer: LoopbackBuyer,
) -> None:
    buyer.behaviour = Behaviour(bid={"price": 0})

    round_and_notices(buyer)

    assert losses(buyer) == []


def test_valid_bids_get_no_notice_from_the_round(buyer: LoopbackBuyer) -> None:
    # A valid bid's notice comes with the auction: won (nurl) or lost (lurl), once.
    buyer.behaviour = Behaviour(bid={"adomain": ["brand.example"]})

    result = round_and_notices(buyer, badv=normalise_badv(["other.example"]))

    assert len(result.bids) == 1
    assert buyer.notice_paths() == []
