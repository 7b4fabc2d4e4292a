"""Single video imps (issue 13 item 7): `rqddurs` (exact durations only) and `mincpmpersec`
for our line items and buyers' bids, and `dur`/`protocol` in our BidResponse."""

import time
from decimal import Decimal
from typing import Any

import pytest

from serving.buyers.pool import BuyerPool
from serving.context import Imp, VideoSpec
from serving.render import Renderer
from serving.tokens import TokenSigner
from tests.serving.buyer_helpers import context, snap, with_pool
from tests.serving.buyer_server import Behaviour, LoopbackBuyer
from tests.serving.test_engine import PLACEMENT, creative, ctx, index_of, li, run

D = Decimal
VIDEO = frozenset({"video"})


def video_imp(**spec: Any) -> Imp:
    return Imp(id="v", sizes=(), formats=VIDEO, bidfloor=D("1.00"), video=VideoSpec(**spec))


def a_30s_line_item(bid: str) -> Any:
    video = creative(10, "1920x1080", format="video", duration=30, mimes=["video/mp4"])
    return index_of(li(1, bid, size="1920x1080"), creatives=[video])


def test_our_video_line_item_meets_the_per_second_floor_of_its_duration() -> None:
    per_second = video_imp(mincpmpersec=D("0.10"))  # 30 s: a 3.00 floor, over the imp's 1.00

    assert run(a_30s_line_item("2.50"), ctx(per_second)).decisions == []
    [d] = run(a_30s_line_item("5.00"), ctx(per_second)).decisions
    assert d.price == D("3.01")  # its own duration's floor, not the imp's 1.00, sets the price
    [plain] = run(a_30s_line_item("5.00"), ctx(video_imp())).decisions
    assert plain.price == D("1.01")


def test_rqddurs_allows_exact_durations_only_for_our_creatives() -> None:
    assert run(a_30s_line_item("5"), ctx(video_imp(rqddurs=(15, 30)))).decisions
    assert not run(a_30s_line_item("5"), ctx(video_imp(rqddurs=(15, 29)))).decisions


@pytest.mark.parametrize(
    ("spec", "bid", "outcome", "notice"),
    [
        ({"rqddurs": (15, 30)}, {"dur": 30}, "bid", None),
        ({"rqddurs": (15, 30)}, {"dur": 20}, "duration", "/loss?reason=3&min="),
        ({"rqddurs": (15, 30)}, {"dur": None}, "duration", "/loss?reason=3&min="),
        ({"maxduration": 30}, {"dur": 31}, "duration", "/loss?reason=3&min="),
        ({"maxduration": 30}, {"dur": None}, "bid", None),  # min/max alone: dur is trusted
        ({"mincpmpersec": D("0.10")}, {"dur": 30, "price": 2.5}, "below_floor", "min=3.00"),
        ({"mincpmpersec": D("0.10")}, {"dur": 30, "price": 3.5}, "bid", None),
        ({"mincpmpersec": D("0.10")}, {"dur": None}, "duration", "/loss?reason=3&min="),
    ],
)
def test_a_buyers_video_bid_is_judged_by_its_dur(
    buyer: LoopbackBuyer,
    spec: dict[str, Any],
    bid: dict[str, Any],
    outcome: str,
    notice: str | None,
) -> None:
    buyer.behaviour = Behaviour(bid={"mtype": 2, "w": None, "h": None, **bid})

    async def scenario(pool: BuyerPool) -> Any:
        c = context(imps=[video_imp(**spec)])
        result = await pool.solicit(c, [snap(buyer)], c.imps, time.monotonic() + 0.3)
        await pool.drain_notices()
        return result

    result = with_pool(scenario)

    assert result.outcomes[0].outcome == outcome
    losses = [p for p in buyer.notice_paths() if p.startswith("/loss")]
    if notice is None:
        assert losses == []
    else:
        [loss] = losses
        assert loss.endswith(notice) or loss == notice


def test_our_video_bids_carry_dur_and_the_vast_protocol() -> None:
    index = a_30s_line_item("5.00")
    c = ctx(video_imp())
    outcome = run(index, c)
    renderer = Renderer(TokenSigner("k"), "https://ads.test")

    [served] = renderer.render_all(c, PLACEMENT, outcome)
    bid = renderer.openrtb_bid(served, D(1))

    assert (bid.mtype, bid.dur, bid.protocol) == (2, 30, 13)
