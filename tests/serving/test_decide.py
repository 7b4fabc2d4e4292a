import random
from decimal import Decimal

from serving.decide import SlotRequest, clearing_price, decide
from serving.snapshot import (
    CampaignSnap,
    CreativeSnap,
    LineItemSnap,
    PlacementSnap,
    Snapshot,
    compile_index,
)

NOW = 1_800_000_000.0


def li(
    id: int,
    cpm: str,
    size: str = "300x250",
    placements: tuple[int, ...] = (),
    start: float = NOW - 60,
    end: float | None = None,
    campaign: int = 0,
) -> LineItemSnap:
    return LineItemSnap(
        id=id,
        campaign_id=campaign or id,
        advertiser_id=1,
        cpm=Decimal(cpm),
        sizes=[size],
        placement_ids=list(placements),
        start=start,
        end=end,
        creative_ids=[id * 10],
        creative_weights=[1],
    )


PLACEMENT = PlacementSnap(
    id=7, publisher_id=1, key="k", sizes=["300x250", "728x90"], floor_cpm=Decimal("0")
)


def index_of(*items: LineItemSnap):
    return compile_index(
        Snapshot(
            version=1,
            built_at="",
            placements=[PLACEMENT],
            campaigns=[CampaignSnap(id=i.campaign_id, daily_budget=Decimal(10)) for i in items],
            creatives=[
                CreativeSnap(
                    id=i.id * 10, size=i.sizes[0], markup="<a>", click_url="https://x.test"
                )
                for i in items
            ],
            line_items=list(items),
        )
    )


def one_slot(*sizes: str) -> list[SlotRequest]:
    return [SlotRequest("s", sizes or ("300x250",))]


def test_highest_bid_wins_at_second_price_plus_a_cent() -> None:
    index = index_of(li(1, "2.00"), li(2, "5.00"), li(3, "3.10"))

    [d] = decide(index, PLACEMENT, one_slot(), NOW)

    assert d.line_item.id == 2
    assert d.price == Decimal("3.11")
    assert d.creative.id == 20


def test_lone_bidder_clears_at_floor_plus_a_cent() -> None:
    placement = PlacementSnap(id=7, publisher_id=1, key="k", sizes=[], floor_cpm=Decimal("1.50"))
    index = index_of(li(1, "4.00"))

    [d] = decide(index, placement, one_slot(), NOW)

    assert d.price == Decimal("1.51")


def test_bids_below_the_floor_do_not_compete() -> None:
    placement = PlacementSnap(id=7, publisher_id=1, key="k", sizes=[], floor_cpm=Decimal("3.00"))
    index = index_of(li(1, "2.99"), li(2, "2.00"))

    assert decide(index, placement, one_slot(), NOW) == []


def test_clearing_price_never_exceeds_the_winning_bid() -> None:
    assert clearing_price(Decimal("2.00"), Decimal("2.00"), Decimal("0")) == Decimal("2.00")
    assert clearing_price(Decimal("2.00"), None, Decimal("2.00")) == Decimal("2.00")


def test_flight_dates_and_exhausted_budgets_are_respected() -> None:
    index = index_of(
        li(1, "9.00", start=NOW + 10),  # not started
        li(2, "8.00", end=NOW),  # ended
        li(3, "7.00"),  # budget exhausted
        li(4, "1.00"),
    )

    [d] = decide(index, PLACEMENT, one_slot(), NOW, exhausted={3})

    assert d.line_item.id == 4


def test_placement_targeting_and_size() -> None:
    index = index_of(li(1, "9.00", placements=(99,)), li(2, "1.00"), li(3, "5.00", size="728x90"))

    [d] = decide(index, PLACEMENT, one_slot("300x250"), NOW)
    assert d.line_item.id == 2

    [d] = decide(index, PLACEMENT, one_slot("300x250", "728x90"), NOW)
    assert (d.line_item.id, d.size, d.price) == (3, "728x90", Decimal("1.01"))


def test_a_size_the_placement_does_not_take_gets_nothing() -> None:
    index = index_of(li(1, "9.00", size="160x600"))

    assert decide(index, PLACEMENT, one_slot("160x600"), NOW) == []


def test_each_slot_gets_a_different_line_item() -> None:
    index = index_of(li(1, "3.00"), li(2, "2.00"), li(3, "1.00"))
    slots = [SlotRequest("a", ["300x250"]), SlotRequest("b", ["300x250"])]

    a, b = decide(index, PLACEMENT, slots, NOW, rng=random.Random(1))

    assert (a.line_item.id, a.price) == (1, Decimal("2.01"))
    assert (b.line_item.id, b.price) == (2, Decimal("1.01"))


def test_top_two_survive_many_ineligible_entries() -> None:
    items = [li(i, f"{100 - i}.00", start=NOW + 5) for i in range(1, 50)]
    index = index_of(*items, li(60, "2.00"), li(61, "1.00"))

    [d] = decide(index, PLACEMENT, one_slot(), NOW)

    assert (d.line_item.id, d.price) == (60, Decimal("1.01"))
