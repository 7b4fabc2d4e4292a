"""The whole-request decision over a compiled index: targeting, gates, deals, explain."""

from decimal import Decimal
from typing import Any

import msgspec
import pytest

from compliance.policy import Permissions, PrivacySignals
from serving.blocks import normalise_badv
from serving.buyers.bids import ExternalBid, LostBid
from serving.context import AdContext, DealRequest, DeviceInfo, Geo, Imp, VideoSpec
from serving.engine import decide
from serving.ids import decision_rng
from serving.index import compile_index
from serving.openrtb import LOSS_BELOW_FLOOR, LOSS_OUTBID
from serving.snapshot import (
    CampaignSnap,
    CreativeSnap,
    DealSnap,
    LineItemSnap,
    PlacementSnap,
    Snapshot,
)
from serving.targeting import RequestState

NOW = 1_800_000_000.0  # a Friday, 08:00 UTC
D = Decimal
ONE = D("1.00")
PLACEMENT = PlacementSnap(
    id=7, publisher_id=1, key="k", sizes=["300x250", "728x90"], floor_cpm=D("0")
)


def external_bid(bid_id: str = "b1", price: D = ONE) -> ExternalBid:
    return ExternalBid(
        buyer_id=1, buyer_name="buyer", imp_id="s", price=price, original_price=price,
        adm="<div>", adomain=("brand.example",), crid="c", cid=None, cat=(), w=300, h=250,
        mtype=1, dealid=None, nurl=None, burl=None, lurl="https://buyer.test/l", bid_id=bid_id,
        seat=None,
    )  # fmt: skip


def li(id: int, bid: str, **fields: Any) -> LineItemSnap:
    base = LineItemSnap(
        id=id,
        campaign_id=fields.pop("campaign", id),
        advertiser_id=1,
        bid=D(bid),
        sizes=[fields.pop("size", "300x250")],
        start=fields.pop("start", NOW - 60),
        end=fields.pop("end", None),
        creative_ids=fields.pop("creatives", [id * 10]),
        creative_weights=fields.pop("weights", [1]),
        child_safe=fields.pop("child_safe", True),
    )
    return msgspec.structs.replace(base, **fields)


def creative(id: int, size: str = "300x250", **fields: Any) -> CreativeSnap:
    return CreativeSnap(id=id, size=size, markup="<a>", click_url="https://x.test", **fields)


def index_of(*items: LineItemSnap, creatives: list[CreativeSnap] | None = None, deals=()):
    if creatives is None:
        creatives = [creative(i.id * 10, i.sizes[0]) for i in items]
    return compile_index(
        Snapshot(
            version=1,
            built_at="",
            placements=[PLACEMENT],
            campaigns=[CampaignSnap(id=i.campaign_id, daily_budget=D(10)) for i in items],
            creatives=creatives,
            line_items=list(items),
            deals=list(deals),
        )
    )


def ctx(*imps: Imp, personalise: bool = True, **fields: Any) -> AdContext:
    fields.setdefault("request_id", "r1")
    c = AdContext(
        source="v1",
        placement_key="k",
        imps=list(imps) or [Imp(id="s", sizes=("300x250",))],
        now=NOW,
        **fields,
    )
    c.permissions = Permissions(serve=True, personalise=personalise, use_ids=personalise)
    return c


def run(index, context: AdContext, caps=None, exhausted=frozenset(), pacing=None, external=()):
    state = RequestState.of(
        context,
        now=NOW,
        exhausted=exhausted,
        pacing=pacing or {},
        rng=decision_rng(context.request_id),
        caps=caps,
    )
    return decide(index, PLACEMENT, context, state, external)


def winner(index, context: AdContext, **kw: Any) -> int | None:
    outcome = run(index, context, **kw)
    return outcome.decisions[0].line_item.id if outcome.decisions else None


def test_highest_bid_wins_at_second_price_plus_a_cent() -> None:
    [d] = run(index_of(li(1, "2.00"), li(2, "5.00"), li(3, "3.10")), ctx()).decisions
    assert (d.line_item.id, d.price, d.creative.id) == (2, D("3.11"), 20)


def test_flight_dates_and_exhausted_budgets_are_respected() -> None:
    index = index_of(
        li(1, "9.00", start=NOW + 10), li(2, "8.00", end=NOW), li(3, "7.00"), li(4, "1.00")
    )
    outcome = run(index, ctx(), exhausted={3})
    assert outcome.decisions[0].line_item.id == 4
    assert set(outcome.rejected) == {(1, "not_started"), (2, "ended"), (3, "budget_exhausted")}


def test_geo_device_and_channel_come_from_the_index() -> None:
    index = index_of(
        li(1, "9", countries=["DE"]),
        li(2, "8", device_types=[3]),
        li(3, "7", channels=["app"]),
        li(4, "1"),
    )
    assert winner(index, ctx()) == 4
    assert winner(index, ctx(geo=Geo(country="DE"))) == 1
    assert winner(index, ctx(device=DeviceInfo(devicetype=3))) == 2
    assert winner(index, ctx(channel="app")) == 3


def test_region_property_keywords_and_categories() -> None:
    index = index_of(
        li(1, "9", regions=["US-CA"]),
        li(2, "8", properties=["Fire TV"]),
        li(3, "7", keywords=["boots"], negative_keywords=["sale"]),
        li(4, "6", categories=["IAB7"]),
        li(5, "1"),
    )
    assert winner(index, ctx(geo=Geo(country="US", region="US-NY"))) == 5
    assert winner(index, ctx(geo=Geo(country="US", region="US-CA"))) == 1
    assert winner(index, ctx(property="Fire TV")) == 2
    assert winner(index, ctx(keywords=("boots",))) == 3
    assert winner(index, ctx(keywords=("boots", "sale"))) == 5
    assert winner(index, ctx(content_categories=("IAB7-39",))) == 4
    assert winner(index, ctx(content_categories=("IAB8",))) == 5


def test_segments_need_consent_to_personalise() -> None:
    index = index_of(li(1, "9", segments=["runners"]), li(2, "1"))
    assert winner(index, ctx(segments=("runners",))) == 1
    outcome = run(index, ctx(segments=("runners",), personalise=False))
    assert outcome.decisions[0].line_item.id == 2
    assert (1, "segments_without_consent") in outcome.rejected


def test_dayparts_in_the_advertiser_time_zone() -> None:
    # NOW is Friday 08:00 UTC = 10:00 in Berlin (summer time) and 04:00 in New York.
    berlin = li(1, "9", dayparts=[(4, 9 * 60, 11 * 60)], time_zone="Europe/Berlin")
    new_york = li(2, "8", dayparts=[(4, 9 * 60, 11 * 60)], time_zone="America/New_York")
    assert winner(index_of(berlin, li(3, "1")), ctx()) == 1
    assert winner(index_of(new_york, li(3, "1")), ctx()) == 3


def test_coppa_serves_only_child_safe_line_items() -> None:
    index = index_of(li(1, "9", child_safe=False), li(2, "1", child_safe=True))
    assert winner(index, ctx()) == 1
    assert winner(index, ctx(privacy=PrivacySignals(coppa=1))) == 2


def test_frequency_caps_read_the_users_counters() -> None:
    capped = li(1, "9", frequency_caps=[(2, "day")])
    index = index_of(capped, li(2, "1"))
    field = f"1:day:{int(NOW // 86400)}"
    assert winner(index, ctx(), caps={}) == 1
    assert winner(index, ctx(), caps={field: 1}) == 1
    assert winner(index, ctx(), caps={field: 2}) == 2
    # Without a usable pseudonymous id the cap cannot be kept: the line item sits out.
    outcome = run(index, ctx(), caps=None)
    assert outcome.decisions[0].line_item.id == 2
    assert (1, "frequency_cap_without_id") in outcome.rejected


def test_badv_bcat_and_secure_filter_creatives() -> None:
    creatives = [
        creative(10, adomain=["shoes.example"]),
        creative(20, categories=["IAB7-39"]),
        creative(30, secure=False),
        creative(40, adomain=["other.example"]),
    ]
    index = index_of(li(1, "9"), li(2, "8"), li(3, "7"), li(4, "1"), creatives=creatives)
    assert winner(index, ctx(badv=frozenset({"shoes.example"}), bcat=frozenset({"IAB7"}))) == 4
    assert winner(index, ctx(Imp(id="s", sizes=("300x250",), secure=False))) == 1


@pytest.mark.parametrize(
    ("adomain", "blocked"),
    [
        (["brand.example"], True),
        (["Shop.BRAND.example."], True),  # a subdomain, in another case, with a root dot
        (["brand.example.org"], False),  # not a subdomain
        (["notbrand.example"], False),
        (["other.example", "www.brand.example"], True),  # any of its domains
        ([], True),  # no advertiser domain: it cannot be checked against badv
    ],
)
def test_badv_blocks_our_creatives_case_insensitively_with_subdomains(
    adomain: list[str], blocked: bool
) -> None:
    others = creative(20, adomain=["other.example"])
    index = index_of(li(1, "9"), li(2, "1"), creatives=[creative(10, adomain=adomain), others])
    badv = normalise_badv(["BRAND.example"])

    assert winner(index, ctx(badv=badv)) == (2 if blocked else 1)
    assert winner(index, ctx()) == 1  # without badv nothing is checked


def test_external_bids_that_lose_with_no_winner_are_listed_for_loss_notices() -> None:
    placement_floor = msgspec.structs.replace(PLACEMENT, floor_cpm=D("2.00"))
    bid = external_bid(price=D("1.50"))
    context = ctx()
    state = RequestState.of(
        context, now=NOW, exhausted=frozenset(), pacing={}, rng=decision_rng("r"), caps=None
    )

    outcome = decide(index_of(), placement_floor, context, state, [bid])

    assert outcome.decisions == []
    assert outcome.lost == [LostBid(bid, LOSS_BELOW_FLOOR, D("2.00"))]


def test_external_losers_learn_the_price_to_beat_only_from_their_own_tier() -> None:
    low, high = external_bid("a", D("1.50")), external_bid("b", D("3.00"))

    outcome = run(index_of(li(1, "2.00")), ctx(), external=[low, high])

    assert outcome.decisions[0].external is high
    assert outcome.lost == [LostBid(low, LOSS_OUTBID, D("2.01"))]
    sponsored = run(index_of(li(1, "2.00", tier=0)), ctx(), external=[high])
    assert sponsored.lost == [LostBid(high, LOSS_OUTBID, None)]


def test_deals_and_private_auctions() -> None:
    deals = [DealSnap(deal_id="D1", advertiser_id=1, floor=D("2"), fixed_price=D("6"))]
    index = index_of(li(1, "8", deal_ids=["D1"]), li(2, "9"), deals=deals)
    open_imp = Imp(id="s", sizes=("300x250",))
    assert winner(index, ctx(open_imp)) == 2  # the deal line item needs its deal
    with_deal = Imp(id="s", sizes=("300x250",), deals=(DealRequest("D1", D("1")),))
    assert winner(index, ctx(with_deal)) == 2  # open auction: the higher bid wins
    private = Imp(
        id="s", sizes=("300x250",), private_auction=True, deals=(DealRequest("D1", D("1")),)
    )
    [d] = run(index, ctx(private)).decisions
    assert (d.line_item.id, d.price, d.deal_id) == (1, D("6"), "D1")


def test_floors_from_the_imp_and_the_placement() -> None:
    index = index_of(li(1, "3"), li(2, "2"))
    [d] = run(index, ctx(Imp(id="s", sizes=("300x250",), bidfloor=D("2.50")))).decisions
    assert (d.line_item.id, d.price) == (1, D("2.51"))
    assert run(index, ctx(Imp(id="s", sizes=("300x250",), bidfloor=D("5")))).decisions == []


def test_cpc_competes_on_ecpm() -> None:
    cpc = li(1, "2.00", bid_type="cpc", predicted_ctr=0.002)  # eCPM 4.00
    [d] = run(index_of(cpc, li(2, "3.00")), ctx()).decisions
    assert (d.line_item.id, d.price) == (1, D("3.01"))


def test_pacing_gate_throttles_by_pass_through_rate() -> None:
    index = index_of(li(1, "9"), li(2, "1"))
    wins = sum(
        run(index, ctx(request_id=f"r{n}"), pacing={1: 0.25}).decisions[0].line_item.id == 1
        for n in range(400)
    )
    assert 60 < wins < 140  # about a quarter
    assert winner(index, ctx(), pacing={1: 0.0}) == 2


def test_video_matches_on_format_and_duration() -> None:
    video = creative(10, "1920x1080", format="video", duration=30, mimes=["video/mp4"])
    index = index_of(li(1, "5", size="1920x1080"), creatives=[video])
    player = Imp(id="v", sizes=("640x360",), formats=frozenset({"video"}), video=VideoSpec())
    assert winner(index, ctx(player)) == 1
    short = Imp(id="v", sizes=(), formats=frozenset({"video"}), video=VideoSpec(maxduration=15))
    assert winner(index, ctx(short)) is None
    webm = Imp(
        id="v", sizes=(), formats=frozenset({"video"}), video=VideoSpec(mimes=("video/webm",))
    )
    assert winner(index, ctx(webm)) is None
    assert winner(index, ctx(Imp(id="b", sizes=("300x250",)))) is None


def test_each_slot_gets_a_different_line_item() -> None:
    index = index_of(li(1, "3.00"), li(2, "2.00"), li(3, "1.00"))
    a, b = run(
        index, ctx(Imp(id="a", sizes=("300x250",)), Imp(id="b", sizes=("300x250",)))
    ).decisions
    assert (a.line_item.id, a.price) == (1, D("2.01"))
    assert (b.line_item.id, b.price) == (2, D("1.01"))


def test_the_scan_survives_many_ineligible_entries() -> None:
    items = [li(i, f"{100 - i}.00", start=NOW + 5) for i in range(1, 50)]
    [d] = run(index_of(*items, li(60, "2.00"), li(61, "1.00")), ctx()).decisions
    assert (d.line_item.id, d.price) == (60, D("1.01"))


def test_explain_reports_every_line_item() -> None:
    index = index_of(
        li(1, "9", countries=["DE"]),
        li(2, "8", start=NOW + 5),
        li(3, "5"),
        li(4, "4"),
        li(5, "3", size="728x90"),
    )
    outcome = run(index, ctx(explain=True))
    [report] = outcome.explain
    results = {line["line_item"]: line["result"] for line in report["line_items"]}
    assert results == {
        1: "country",
        2: "not_started",
        3: "won",
        4: "outbid",
        5: "size_or_format",
    }
    assert report["price"] == "4.01"


@pytest.mark.parametrize("count", [1, 3])
def test_weighted_rotation_is_replayable(count: int) -> None:
    creatives = [creative(10 + n) for n in range(count)]
    item = li(1, "1", creatives=[c.id for c in creatives], weights=[1] * count)
    index = index_of(item, creatives=creatives)
    first = run(index, ctx()).decisions[0].creative
    assert all(run(index, ctx()).decisions[0].creative == first for _ in range(5))
