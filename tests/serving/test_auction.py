"""The auction as a pure function: a table of Decimal cases."""

import random
from decimal import Decimal

import pytest

from serving.auction import (
    LOSS_BELOW_DEAL_FLOOR,
    LOSS_BELOW_FLOOR,
    LOSS_NOT_IN_DEAL,
    LOSS_OUTBID,
    LOSS_OUTBID_BY_DEAL,
    Bid,
    Deal,
    clearing_price,
    run_auction,
)

D = Decimal
PRICE, HOUSE, GUARANTEED, SPONSORSHIP = 2, 3, 1, 0


def bid(key: str, ecpm: str, tier: int = PRICE, deal: Deal | None = None) -> Bid:
    return Bid(key, tier, D(ecpm), deal)


CASES = [
    # (name, bids, floor, first price, private, winner, price)
    (
        "second price plus a cent",
        [bid("a", "5"), bid("b", "3.10"), bid("c", "2")],
        "0",
        False,
        False,
        "a",
        "3.11",
    ),
    ("single bid clears at floor plus a cent", [bid("a", "4")], "1.50", False, False, "a", "1.51"),
    (
        "single bid at the floor pays the floor",
        [bid("a", "1.50")],
        "1.50",
        False,
        False,
        "a",
        "1.50",
    ),
    (
        "price capped at own bid",
        [bid("a", "2.00"), bid("b", "1.995")],
        "0",
        False,
        False,
        "a",
        "2.00",
    ),
    (
        "floor above runner-up sets the price",
        [bid("a", "5"), bid("b", "1")],
        "2",
        False,
        False,
        "a",
        "2.01",
    ),
    ("below the floor loses", [bid("a", "2.99")], "3", False, False, None, None),
    ("first price pays the bid", [bid("a", "5"), bid("b", "3")], "0", True, False, "a", "5"),
    (
        "sponsorship beats a higher price bid",
        [bid("a", "9"), bid("s", "2", SPONSORSHIP)],
        "0",
        False,
        False,
        "s",
        "2",
    ),
    (
        "guaranteed pays its booked rate",
        [bid("g", "4", GUARANTEED), bid("g2", "1", GUARANTEED)],
        "0",
        False,
        False,
        "g",
        "4",
    ),
    (
        "price tier beats house",
        [bid("h", "9", HOUSE), bid("p", "1")],
        "0",
        False,
        False,
        "p",
        "0.01",
    ),
    (
        "a lower tier never sets the price",
        [bid("p", "5"), bid("h", "4.50", HOUSE)],
        "1",
        False,
        False,
        "p",
        "1.01",
    ),
    (
        "fixed-price deal clears at the deal price",
        [bid("d", "8", deal=Deal("D1", D("2"), D("6"))), bid("b", "3")],
        "0",
        False,
        False,
        "d",
        "6",
    ),
    (
        "deal bid priced against the deal floor",
        [bid("d", "8", deal=Deal("D1", D("5")))],
        "1",
        False,
        False,
        "d",
        "5.01",
    ),
    (
        "deal floor applies to deal bids",
        [bid("d", "4", deal=Deal("D1", D("5"))), bid("b", "3")],
        "1",
        False,
        False,
        "b",
        "1.01",
    ),
    (
        "private auction admits only deal bids",
        [bid("open", "9"), bid("d", "3", deal=Deal("D1", D("1")))],
        "0",
        False,
        True,
        "d",
        "1.01",
    ),
    ("private auction with no deal bid", [bid("open", "9")], "0", False, True, None, None),
]


@pytest.mark.parametrize(
    ("bids", "floor", "first", "private", "winner", "price"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_auction_table(
    bids: list[Bid], floor: str, first: bool, private: bool, winner: str | None, price: str | None
) -> None:
    result = run_auction(
        bids, floor=D(floor), first_price=first, private_auction=private, rng=random.Random(1)
    )

    assert (result.winner.key if result.winner else None) == winner
    assert result.price == (D(price) if price is not None else None)
    assert len(result.losses) == len(bids) - (1 if winner else 0)


def test_loss_reasons() -> None:
    deal = Deal("D1", D("5"))
    result = run_auction(
        [
            bid("w", "9", deal=Deal("D2", D("1"))),
            bid("low", "0.5"),
            bid("d", "4", deal=deal),
            bid("x", "2"),
        ],
        floor=D("1"),
        rng=random.Random(1),
    )
    reasons = {b.key: code for b, code in result.losses}
    assert reasons == {
        "low": LOSS_BELOW_FLOOR,
        "d": LOSS_BELOW_DEAL_FLOOR,
        "x": LOSS_OUTBID_BY_DEAL,
    }

    result = run_auction([bid("open", "9")], floor=D(0), private_auction=True, rng=random.Random(1))
    assert result.losses[0][1] == LOSS_NOT_IN_DEAL
    result = run_auction([bid("a", "3"), bid("b", "2")], floor=D(0), rng=random.Random(1))
    assert result.losses[0][1] == LOSS_OUTBID


def test_ties_are_broken_by_the_seeded_generator_not_by_id() -> None:
    bids = [bid("a", "3"), bid("b", "3"), bid("c", "1")]
    winners = {
        run_auction(bids, floor=D(0), rng=random.Random(seed)).winner.key  # type: ignore[union-attr]
        for seed in range(40)
    }
    assert winners == {"a", "b"}
    # The same seed always gives the same winner, and a tie clears at the tied price.
    first = run_auction(bids, floor=D(0), rng=random.Random(7))
    again = run_auction(bids, floor=D(0), rng=random.Random(7))
    assert first.winner == again.winner
    assert first.price == D(3)


def test_clearing_price_never_exceeds_the_winning_bid() -> None:
    assert clearing_price(D("2.00"), D("2.00"), D("0")) == D("2.00")
    assert clearing_price(D("2.00"), None, D("2.00")) == D("2.00")
    assert clearing_price(D("10"), D("3.333"), D("1")) == D("3.343")
