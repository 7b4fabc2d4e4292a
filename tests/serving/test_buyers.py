"""External OpenRTB buyers: the pool against real HTTP buyers on 127.0.0.1, the bids it lets
into the round and the answers it drops (its time limits: test_buyers_time.py; privacy:
test_buyers_privacy.py; notices and counters: test_buyers_notices.py; its limits:
test_buyer_limits.py; the Buyer model and its admin: test_buyer_admin.py)."""

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from compliance.policy import PrivacySignals
from serving.buyers.bids import ExternalBid
from serving.context import DealRequest, Imp
from tests.serving.buyer_helpers import FLOOR, context, counts, snap, solicit_once
from tests.serving.buyer_server import AUCTION_MACROS, Behaviour, LoopbackBuyer, closed_port

# -- valid bids ------------------------------------------------------------------------


def test_a_valid_bid_enters_the_round_converted_into_the_platform_currency(
    buyer: LoopbackBuyer,
) -> None:
    buyer.behaviour = Behaviour(currency="EUR", bid={"price": "2.00"})

    result, stats = solicit_once([snap(buyer, currency="EUR")])

    [bid] = result.bids
    assert bid == ExternalBid(
        buyer_id=1,
        buyer_name="buyer-1",
        imp_id="1",
        price=Decimal("2.200000"),
        original_price=Decimal("2.00"),
        adm="<div>buyer ad</div>",
        adomain=("brand.example",),
        crid="creative-1",
        cid="campaign-1",
        cat=("IAB1",),
        w=300,
        h=250,
        mtype=1,
        dealid=None,
        nurl=f"{buyer.base_url}/win?{AUCTION_MACROS}",
        burl=f"{buyer.base_url}/bill?{AUCTION_MACROS}",
        lurl=f"{buyer.base_url}/loss?reason=${{AUCTION_LOSS}}&min=${{AUCTION_MIN_TO_WIN}}",
        bid_id="bid-1",
        seat="seat-1",
        currency="EUR",
        fx_rate=Decimal("1.10"),
    )
    assert bid.in_buyer_currency(Decimal("2.20")) == Decimal("2.000000")
    assert counts(stats) == {"1:request": 1, "1:bid": 1}
    assert stats["1:latency_count"] == 1
    [outcome] = result.outcomes
    assert (outcome.outcome, outcome.called, outcome.status, outcome.bids) == ("bid", True, 200, 1)
    assert outcome.latency_ms is not None and outcome.latency_ms > 0


def test_the_floor_is_compared_with_the_converted_price(buyer: LoopbackBuyer) -> None:
    # EUR 0.47 is below a 0.50 floor as a number but worth USD 0.517.
    buyer.behaviour = Behaviour(currency="EUR", bid={"price": "0.47"})

    result, _ = solicit_once([snap(buyer, currency="EUR")])

    assert [b.price for b in result.bids] == [Decimal("0.517000")]


def test_one_bad_bid_does_not_spoil_the_good_one_beside_it(buyer: LoopbackBuyer) -> None:
    buyer.behaviour = Behaviour(extra_bids=[{"price": 0}, {"impid": "nope"}])

    result, stats = solicit_once([snap(buyer)])

    assert [b.bid_id for b in result.bids] == ["bid-1"]
    assert counts(stats) == {"1:request": 1, "1:bid": 1, "1:bad_price": 1, "1:unknown_imp": 1}
    assert result.outcomes[0].dropped == {"bad_price": 1, "unknown_imp": 1}


def test_the_explain_view_lists_every_buyer(
    buyer: LoopbackBuyer, start_buyer: Callable[..., LoopbackBuyer]
) -> None:
    silent = start_buyer(Behaviour(status=204))

    result, _ = solicit_once(
        [snap(buyer), snap(silent, 2), snap(buyer, 3, supports_coppa=True)],
        context(privacy=PrivacySignals(coppa=1)),
    )

    assert [(o["buyer"], o["outcome"], o["called"]) for o in result.explain()] == [
        (1, "coppa", False),
        (2, "coppa", False),
        (3, "bid", True),
    ]


# -- drops -----------------------------------------------------------------------------

BLOCKS: dict[str, Any] = {"badv": frozenset({"blocked.example"}), "bcat": frozenset({"IAB7"})}
DROPS = [
    pytest.param(Behaviour(status=204), "no_bid", id="204"),
    pytest.param(Behaviour(no_bid=True), "no_bid", id="empty-seatbid"),
    pytest.param(Behaviour(raw=b"{}"), "no_bid", id="empty-object"),
    pytest.param(Behaviour(status=500), "http_500", id="500"),
    pytest.param(Behaviour(status=400), "http_400", id="400"),
    pytest.param(Behaviour(raw=b'{"id": "req-1", "seatbid": [{'), "invalid_json", id="broken"),
    pytest.param(
        Behaviour(raw=b'{"id": "req-1", "seatbid": [{"bid": [{"id": "b"}]}]}'),
        "invalid_json",
        id="schema",
    ),
    pytest.param(Behaviour(response_id="someone-else"), "wrong_id", id="wrong-id"),
    pytest.param(Behaviour(bid={"impid": "no-such-imp"}), "unknown_imp", id="unknown-imp"),
    pytest.param(Behaviour(bid={"price": 0}), "bad_price", id="zero-price"),
    pytest.param(Behaviour(bid={"price": -1.5}), "bad_price", id="negative-price"),
    pytest.param(Behaviour(currency="EUR"), "wrong_currency", id="not-the-buyers-currency"),
    pytest.param(Behaviour(bid={"adm": None, "nurl": None}), "no_markup", id="no-markup"),
    pytest.param(Behaviour(bid={"adomain": ["shop.Blocked.example"]}), "blocked_domain", id="badv"),
    pytest.param(Behaviour(bid={"cat": ["IAB1", "IAB7-39"]}), "blocked_category", id="bcat"),
    pytest.param(Behaviour(bid={"dealid": "not-offered"}), "invalid_deal", id="unknown-deal"),
    pytest.param(Behaviour(bid={"price": 0.49}), "below_floor", id="below-floor"),
]


@pytest.mark.parametrize(("behaviour", "reason"), DROPS)
def test_an_invalid_answer_is_dropped_and_counted(
    buyer: LoopbackBuyer, behaviour: Behaviour, reason: str
) -> None:
    buyer.behaviour = behaviour

    result, stats = solicit_once([snap(buyer)], context(**BLOCKS))

    assert result.bids == []
    assert result.outcomes[0].outcome == reason
    assert counts(stats) == {"1:request": 1, f"1:{reason}": 1}


def test_a_buyer_whose_currency_has_no_fx_rate_is_not_called(buyer: LoopbackBuyer) -> None:
    result, stats = solicit_once([snap(buyer, currency="JPY")])

    assert result.outcomes[0].outcome == "no_fx_rate"
    assert buyer.request_count() == 0
    assert counts(stats) == {"1:no_fx_rate": 1}


def test_a_buyer_is_asked_for_bids_in_its_own_currency_with_floors_converted(
    buyer: LoopbackBuyer,
) -> None:
    deal = DealRequest("deal-1", bidfloor=Decimal("3.30"))
    imp = Imp(id="1", sizes=("300x250",), bidfloor=FLOOR, deals=(deal,))

    solicit_once([snap(buyer, currency="EUR")], context(imps=[imp]))

    sent = buyer.last.body
    assert sent["cur"] == ["EUR"]
    # USD 0.50 at 1.10 is EUR 0.4545..., rounded up so that no bid at it is below the floor.
    [sent_imp] = sent["imp"]
    assert (sent_imp["bidfloor"], sent_imp["bidfloorcur"]) == (0.454546, "EUR")
    [sent_deal] = sent_imp["pmp"]["deals"]
    assert (sent_deal["bidfloor"], sent_deal["bidfloorcur"]) == (3, "EUR")


def test_a_buyer_that_cannot_be_reached_counts_as_an_error() -> None:
    result, stats = solicit_once([snap(f"http://127.0.0.1:{closed_port()}/bid")])

    assert result.outcomes[0].outcome == "error"
    assert counts(stats) == {"1:request": 1, "1:error": 1}


PMP_IMP = Imp(
    id="1",
    sizes=("300x250",),
    bidfloor=FLOOR,
    private_auction=True,
    deals=(
        DealRequest("deal-1", bidfloor=Decimal("3.00")),
        DealRequest("deal-2", bidfloor=Decimal("1.00"), wseat=("seat-9",)),
    ),
)


@pytest.mark.parametrize(
    ("bid", "outcome"),
    [
        pytest.param({}, "invalid_deal", id="no-deal-on-a-private-auction"),
        pytest.param({"dealid": "deal-2"}, "invalid_deal", id="seat-not-allowed"),
        pytest.param({"dealid": "deal-1", "price": 2.0}, "below_floor", id="below-deal-floor"),
        pytest.param({"dealid": "deal-1", "price": 3.25}, "bid", id="on-the-deal"),
    ],
)
def test_deal_rules(buyer: LoopbackBuyer, bid: dict[str, Any], outcome: str) -> None:
    buyer.behaviour = Behaviour(bid=bid)

    result, _ = solicit_once([snap(buyer)], context(imps=[PMP_IMP]))

    assert result.outcomes[0].outcome == outcome
    assert [b.dealid for b in result.bids] == (["deal-1"] if outcome == "bid" else [])
    assert buyer.last.body["imp"][0]["pmp"]["private_auction"] == 1
