"""The pod auction as a pure function: a table of pods, and the search against brute force."""

import itertools
import random
from decimal import Decimal

import pytest

from serving.auction import Bid, Deal
from serving.context import VideoSpec
from serving.openrtb.codes import (
    LOSS_BELOW_DEAL_FLOOR,
    LOSS_BELOW_FLOOR,
    LOSS_INVALID_RESPONSE,
    LOSS_NOT_IN_DEAL,
    LOSS_OUTBID,
    LOSS_OUTBID_BY_DEAL,
)
from serving.pods.auction import (
    PodBid,
    PodResult,
    PodSlot,
    run_dynamic_pod,
    run_structured_pod,
)

D = Decimal
PRICE, HOUSE, GUARANTEED, SPONSORSHIP = 2, 3, 1, 0


def ad(
    key: str,
    ecpm: str,
    dur: int,
    *,
    adv: str | None = None,
    cat: str = "",
    tier: int = PRICE,
    deal: Deal | None = None,
    imp: str | None = None,
) -> PodBid:
    return PodBid(
        Bid(key, tier, D(ecpm), deal),
        dur,
        frozenset({adv or f"adv:{key}"}),
        frozenset({cat}) if cat else frozenset(),
        imp,
    )


def dynamic(
    poddur: int,
    maxseq: int | None = None,
    floor: str = "0",
    *,
    private: bool = False,
    **spec: object,
) -> PodSlot:
    return PodSlot("1", VideoSpec(poddur=poddur, maxseq=maxseq, **spec), D(floor), private)  # type: ignore[arg-type]


def keys(result: PodResult) -> list[str]:
    return [a.ad.bid.key for a in result.ads]


def prices(result: PodResult) -> dict[str, str]:
    return {a.ad.bid.key: str(a.price) for a in result.ads}


def losses(result: PodResult) -> dict[str, int]:
    return {bid.key: code for bid, code in result.losses}


def rng() -> random.Random:
    return random.Random(7)


DYNAMIC_CASES = [
    # (name, bids, slot, pod in order, prices, losses)
    (
        "two 30s ads beat one 60s ad worth more than either (greedy would take the 60s)",
        [ad("a", "20", 30), ad("b", "18", 30), ad("c", "30", 60), ad("d", "5", 15)],
        dynamic(60),
        ["a", "b"],
        {"a": "5.01", "b": "5.01"},
        {"c": LOSS_OUTBID, "d": LOSS_OUTBID},
    ),
    (
        "maxseq caps the number of ads",
        [ad("a", "9", 15), ad("b", "8", 15), ad("c", "7", 15), ad("d", "6", 15)],
        dynamic(120, 2),
        ["a", "b"],
        {"a": "7.01", "b": "7.01"},
        {"c": LOSS_OUTBID, "d": LOSS_OUTBID},
    ),
    (
        "the durations never add up past poddur",
        [ad("a", "10", 30), ad("b", "9", 30), ad("c", "8", 30)],
        dynamic(75),
        ["a", "b"],
        {"a": "8.01", "b": "8.01"},
        {"c": LOSS_OUTBID},
    ),
    (
        "one ad per advertiser: the next best advertiser gets the time",
        [ad("a", "10", 30, adv="brand"), ad("b", "9", 30, adv="brand"), ad("c", "4", 30)],
        dynamic(60),
        ["a", "c"],
        # b bid more than c but lost on separation, not on price: c pays its floor.
        {"a": "9.01", "c": "0.01"},
        {"b": LOSS_OUTBID},
    ),
    (
        "one ad per IAB category",
        [ad("a", "10", 30, cat="IAB2"), ad("b", "9", 30, cat="IAB2"), ad("c", "3", 30, cat="IAB8")],
        dynamic(60),
        ["a", "c"],
        {"a": "9.01", "c": "0.01"},
        {"b": LOSS_OUTBID},
    ),
    (
        "rqddurs: only the exact durations play",
        [ad("a", "10", 20), ad("b", "6", 15), ad("c", "5", 30)],
        dynamic(60, rqddurs=(15, 30)),
        ["b", "c"],
        {"b": "0.01", "c": "0.01"},
        {"a": LOSS_INVALID_RESPONSE},
    ),
    (
        "maxduration applies to each ad of the pod",
        [ad("a", "10", 45), ad("b", "6", 30)],
        dynamic(90, maxduration=30),
        ["b"],
        {"b": "0.01"},
        {"a": LOSS_INVALID_RESPONSE},
    ),
    (
        "mincpmpersec: the floor grows with the ad's length",
        [ad("a", "14", 30), ad("b", "8", 15), ad("c", "15", 30, adv="other")],
        dynamic(60, mincpmpersec=D("0.5")),
        ["c", "b"],
        # c's floor is 15 (30 s x 0.5): it pays it; b's is 7.5.
        {"c": "15", "b": "7.51"},
        {"a": LOSS_BELOW_FLOOR},
    ),
    (
        "the imp floor still holds when the per-second floor is lower",
        [ad("a", "4", 15), ad("b", "6", 15)],
        dynamic(30, floor="5", mincpmpersec=D("0.1")),
        ["b"],
        {"b": "5.01"},
        {"a": LOSS_BELOW_FLOOR},
    ),
    (
        "a sponsorship ad is in the pod whatever price bids offer",
        [ad("s", "1", 30, tier=SPONSORSHIP), ad("a", "50", 30), ad("b", "40", 30)],
        dynamic(60),
        ["s", "a"],
        {"s": "1", "a": "40.01"},
        {"b": LOSS_OUTBID},
    ),
    (
        "a house ad fills time nobody bought, never displaces a bid",
        [ad("h", "90", 30, tier=HOUSE), ad("a", "2", 30), ad("b", "1", 15)],
        dynamic(60),
        ["a", "b"],
        {"a": "0.01", "b": "0.01"},
        {"h": LOSS_OUTBID},
    ),
    (
        "house fills what is left",
        [ad("h", "0.5", 30, tier=HOUSE), ad("a", "2", 30)],
        dynamic(60),
        ["a", "h"],
        {"a": "0.01", "h": "0.01"},
        {},
    ),
    (
        "a fixed-price deal clears at the deal price; losers lose to a deal",
        [ad("a", "12", 30, deal=Deal("d1", D("5"), D("6"))), ad("b", "9", 30), ad("c", "2", 30)],
        dynamic(60),
        ["a", "b"],
        {"a": "6", "b": "2.01"},
        {"c": LOSS_OUTBID_BY_DEAL},
    ),
    (
        "private auction: only deal bids, each at least its deal's floor",
        [
            ad("a", "12", 30, deal=Deal("d1", D("10"))),
            ad("b", "9", 30, deal=Deal("d2", D("10"))),
            ad("c", "50", 30),
        ],
        dynamic(60, private=True),
        ["a"],
        {"a": "10.01"},
        {"b": LOSS_BELOW_DEAL_FLOOR, "c": LOSS_NOT_IN_DEAL},
    ),
    (
        "a line item with several durations goes in once, at the best fit",
        [ad("a", "10", 30, adv="brand"), ad("a", "10", 15, adv="brand"), ad("b", "9", 45)],
        dynamic(60),
        ["a", "b"],
        {"a": "0.01", "b": "0.01"},
        {},
    ),
    (
        "an external bid for another imp is not in this pod",
        [ad("x", "30", 30, imp="2"), ad("a", "5", 30)],
        dynamic(60),
        ["a"],
        {"a": "0.01"},
        {},
    ),
    (
        "nothing fits: an empty pod",
        [ad("a", "5", 90)],
        dynamic(60),
        [],
        {},
        {"a": LOSS_INVALID_RESPONSE},
    ),
]


@pytest.mark.parametrize(
    ("bids", "slot", "pod", "priced", "lost"),
    [case[1:] for case in DYNAMIC_CASES],
    ids=[case[0] for case in DYNAMIC_CASES],
)
def test_dynamic_pod(
    bids: list[PodBid],
    slot: PodSlot,
    pod: list[str],
    priced: dict[str, str],
    lost: dict[str, int],
) -> None:
    result = run_dynamic_pod(bids, slot, rng=rng())

    assert keys(result) == pod
    assert prices(result) == priced
    assert losses(result) == lost
    assert result.duration <= (slot.spec.poddur or 0)
    assert [a.sequence for a in result.ads] == list(range(1, len(pod) + 1))
    assert result.exact


def test_first_price_pays_the_bid() -> None:
    result = run_dynamic_pod(
        [ad("a", "10", 30), ad("b", "9", 30), ad("c", "1", 30)],
        dynamic(60),
        first_price=True,
        rng=rng(),
    )

    assert prices(result) == {"a": "10", "b": "9"}


def slot(imp: str, floor: str = "0", **spec: object) -> PodSlot:
    return PodSlot(imp, VideoSpec(podid="p1", **spec), D(floor))  # type: ignore[arg-type]


STRUCTURED_CASES = [
    (
        "each slot its own duration rule; the long ad goes where it fits",
        [ad("a", "20", 30), ad("b", "10", 15)],
        [slot("1", maxduration=15), slot("2", maxduration=30)],
        [("b", "1"), ("a", "2")],
        {},
    ),
    (
        "separation across the slots of the pod",
        [ad("a", "20", 15, cat="IAB2"), ad("b", "19", 15, cat="IAB2"), ad("c", "1", 15)],
        [slot("1"), slot("2")],
        [("a", "1"), ("c", "2")],
        {"b": LOSS_OUTBID},
    ),
    (
        "an external bid fills only the imp it bid on",
        [ad("x", "20", 15, imp="2"), ad("a", "5", 15)],
        [slot("1"), slot("2")],
        [("a", "1"), ("x", "2")],
        {},
    ),
    (
        "a slot's floor and mincpmpersec hold per slot",
        [ad("a", "8", 30), ad("b", "3", 15)],
        [slot("1", floor="10"), slot("2", mincpmpersec=D("0.2"))],
        [("a", "2")],
        {"b": LOSS_OUTBID},
    ),
    (
        "the best total, not the best first slot",
        [ad("a", "20", 30, adv="brand"), ad("b", "18", 15, adv="brand"), ad("c", "15", 30)],
        [slot("1", maxduration=30), slot("2", maxduration=15)],
        [("c", "1"), ("b", "2")],
        {"a": LOSS_OUTBID},
    ),
]


@pytest.mark.parametrize(
    ("bids", "slots", "pod", "lost"),
    [case[1:] for case in STRUCTURED_CASES],
    ids=[case[0] for case in STRUCTURED_CASES],
)
def test_structured_pod(
    bids: list[PodBid], slots: list[PodSlot], pod: list[tuple[str, str]], lost: dict[str, int]
) -> None:
    result = run_structured_pod(bids, slots, rng=rng())

    assert [(a.ad.bid.key, a.imp_id) for a in result.ads] == pod
    assert losses(result) == lost
    assert result.exact


def _brute_force_dynamic(bids: list[PodBid], poddur: int, maxseq: int) -> Decimal:
    best = D(0)
    for k in range(1, maxseq + 1):
        for combo in itertools.combinations(bids, k):
            if sum(b.duration for b in combo) > poddur:
                continue
            advertisers = [a for b in combo for a in b.advertisers]
            categories = [c for b in combo for c in b.categories]
            if len(set(advertisers)) < len(advertisers) or len(set(categories)) < len(categories):
                continue
            best = max(best, sum((b.bid.ecpm for b in combo), D(0)))
    return best


def test_dynamic_search_finds_the_best_pod_that_brute_force_finds() -> None:
    generator = random.Random(2026)
    for _ in range(300):
        bids = [
            ad(
                f"b{n}",
                str(generator.randint(1, 4000) / 100),
                generator.choice((10, 15, 20, 30, 45, 60)),
                adv=f"adv{generator.randint(1, 6)}",
                cat=generator.choice(("", "IAB1", "IAB2", "IAB3")),
            )
            for n in range(generator.randint(1, 9))
        ]
        poddur, maxseq = generator.choice((30, 60, 90, 120)), generator.randint(1, 5)

        result = run_dynamic_pod(bids, dynamic(poddur, maxseq), rng=rng())

        total = sum((a.ad.bid.ecpm for a in result.ads), D(0))
        assert total == _brute_force_dynamic(bids, poddur, maxseq)
        assert result.duration <= poddur and len(result.ads) <= maxseq


def test_a_large_pod_is_bounded_and_no_worse_than_greedy() -> None:
    # 200 candidates of one category-free advertiser each, all 5 s: the node budget ends
    # the search; the answer is still a full pod of the best ads.
    bids = [ad(f"b{n}", str(100 - n / 10), 5) for n in range(200)]

    result = run_dynamic_pod(bids, dynamic(300, 30), rng=rng())

    assert keys(result) == [f"b{n}" for n in range(30)]


def test_a_bid_below_its_floor_learns_the_floor_it_missed() -> None:
    bids = [ad("a", "14", 30), ad("b", "3", 15, deal=Deal("d1", D("4"))), ad("c", "20", 30)]

    result = run_dynamic_pod(bids, dynamic(60, mincpmpersec=D("0.5")), rng=rng())

    assert losses(result) == {"a": LOSS_BELOW_FLOOR, "b": LOSS_BELOW_DEAL_FLOOR}
    assert result.missed_floors == {"a": D("15.0"), "b": D("4")}


def test_a_hybrid_pods_dynamic_part_is_separated_from_its_structured_ads() -> None:
    structured = [ad("s", "30", 15, adv="brand", cat="IAB2")]
    bids = [
        *structured,  # placed already: neither candidate nor loser here
        ad("a", "20", 15, adv="brand"),
        ad("b", "19", 15, cat="IAB2"),
        ad("c", "5", 15),
    ]

    result = run_dynamic_pod(bids, dynamic(30), rng=rng(), separated_from=structured)

    assert keys(result) == ["c"]
    assert losses(result) == {"a": LOSS_OUTBID, "b": LOSS_OUTBID}
