"""Filling a request's ad pods: candidates from the snapshot and buyers' bids, the pod
auction, one `Decision` per ad.

`serving.engine.decide` leaves pod imps alone; the serving app calls `decide_pods` after it
when the request has any (`AdContext` imps with `is_pod`), so requests without a pod pay
nothing for this. Each ad of a pod becomes a `Decision` like a single video ad's, in the
pod's order: it is rendered, tracked, recorded and billed as one. The pod's losses ride on
its first decision, so each losing bid gets one loss notice.
"""

import dataclasses
import itertools
from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from serving.auction import Bid, Deal
from serving.buyers.bids import ExternalBid, LostBid
from serving.context import AdContext, Imp, VideoSpec
from serving.engine import Decision, Outcome, _deal_for, _ordered, allowed_slots
from serving.index import Candidate, Index
from serving.pods.auction import PodBid, PodResult, PodSlot, run_dynamic_pod, run_structured_pod
from serving.scoring import model_ecpm, request_scores, scored
from serving.snapshot import PRICE_TIER, CreativeSnap, PlacementSnap
from serving.targeting import (
    RequestState,
    allowed_creatives,
    effective_ecpm,
    effective_floor,
    pacing_reason,
    reject_reason,
)

# How many line items a pod looks at, at most (a single slot stops far earlier).
POD_SCAN_LIMIT = 200


def decide_pods(
    index: Index,
    placement: PlacementSnap,
    ctx: AdContext,
    st: RequestState,
    external: Sequence[Any],
    outcome: Outcome,
) -> None:
    """Fill every pod of the request, appending its ads' decisions to `outcome`.

    Structured pods first; a dynamic imp sharing a `podid` with them (a hybrid pod) is then
    filled apart from what they placed, so separation spans the whole break."""
    structured: dict[str, list[Imp]] = defaultdict(list)
    dynamic: list[Imp] = []
    for imp in ctx.imps:
        spec = imp.video
        if spec is None or not imp.is_pod:
            continue
        if spec.poddur is not None:
            dynamic.append(imp)
        else:
            structured[spec.podid or ""].append(imp)
    placed: dict[str, list[PodBid]] = {}
    for podid, imps in structured.items():
        bids = _pod_bids(index, placement, ctx, st, imps, external)
        slots = [
            PodSlot(
                imp.id,
                imp.video or VideoSpec(),
                effective_floor(imp, placement.floor_cpm),
                imp.private_auction,
            )
            for imp in _slot_order(imps)
        ]
        result = run_structured_pod(bids, slots, first_price=ctx.at == 1, rng=st.rng)
        placed[podid] = [ad.ad for ad in result.ads]
        _decisions(result, {imp.id: imp for imp in imps}, st, outcome)
    for imp in dynamic:
        spec = imp.video
        assert spec is not None  # noqa: S101 - a dynamic pod imp has its video
        bids = _pod_bids(index, placement, ctx, st, [imp], external)
        slot = PodSlot(imp.id, spec, effective_floor(imp, placement.floor_cpm), imp.private_auction)
        before = placed.get(spec.podid, []) if spec.podid is not None else []
        result = run_dynamic_pod(
            bids, slot, first_price=ctx.at == 1, rng=st.rng, separated_from=before
        )
        if spec.podid is not None:
            placed.setdefault(spec.podid, []).extend(ad.ad for ad in result.ads)
        _decisions(result, {imp.id: imp}, st, outcome)


def _slot_order(imps: list[Imp]) -> list[Imp]:
    """`slotinpod` 1 first, -1 last, the others (0, 2: any slot) in request order between."""

    def position(imp: Imp) -> int:
        slot = imp.video.slotinpod if imp.video else None
        return 0 if slot == 1 else 2 if slot == -1 else 1

    return sorted(imps, key=position)


def _relaxed(imp: Imp) -> Imp:
    """The imp with no duration rule: the pod auction checks durations per slot."""
    spec = imp.video or VideoSpec()
    loose = dataclasses.replace(spec, minduration=None, maxduration=None, rqddurs=())
    return dataclasses.replace(imp, video=loose)


def _pod_bids(
    index: Index,
    placement: PlacementSnap,
    ctx: AdContext,
    st: RequestState,
    imps: list[Imp],
    external: Sequence[Any],
) -> list[PodBid]:
    """Our line items (one entry per creative duration) and the buyers' bids on these imps."""
    first = imps[0]
    probe = _relaxed(first)
    candidates = _ordered(
        index,
        placement.id,
        allowed_slots(first, placement),
        ctx.geo.country,
        ctx.device.devicetype,
        ctx.channel,
    )
    bids: list[PodBid] = []
    seen: set[int] = set()
    scores = request_scores(index, ctx, placement.id, st.personalise)
    for c in itertools.islice(candidates, POD_SCAN_LIMIT):
        li = c.line_item
        if li.id in seen or reject_reason(c, first, st) is not None:
            continue
        seen.add(li.id)
        creatives, weights = allowed_creatives(c, probe, ctx)
        if not creatives or pacing_reason(li, st) is not None:
            continue
        deal = _deal_for(li, first, index) if li.deal_ids else None
        pctr: float | None = None
        if scores is not None and scored(li):
            model_value, pctr, _pcvr = model_ecpm(c, creatives, weights, scores)
            ecpm = effective_ecpm(c, st, model_value)
        else:
            ecpm = effective_ecpm(c, st)
        bids.extend(_line_item_bids(c, creatives, weights, ecpm, deal, pctr))
    imp_ids = {imp.id for imp in imps}
    deals = {d.id: d for imp in imps for d in imp.deals}
    for ext in external:
        if ext.imp_id in imp_ids:
            bids.append(_external_pod_bid(ext, deals))
    return bids


def _line_item_bids(
    c: Candidate,
    creatives: tuple[CreativeSnap, ...],
    weights: tuple[int, ...],
    ecpm: Decimal,
    deal: Deal | None,
    pctr: float | None,
) -> list[PodBid]:
    """One bid per creative duration, its payload as a single slot's: (candidate, creatives,
    weights, the pCTR the model priced the line item with or None), so that a click on the
    ad is charged with the pCTR its price was set by."""
    li = c.line_item
    by_duration: dict[int, list[tuple[CreativeSnap, int]]] = defaultdict(list)
    for creative, weight in zip(creatives, weights, strict=True):
        by_duration[creative.duration].append((creative, weight))
    out = []
    for duration, group in by_duration.items():
        advertisers = {f"adv:{li.advertiser_id}"}
        categories: set[str] = set()
        for creative, _ in group:
            advertisers.update(d.strip().lower() for d in creative.adomain)
            categories.update(cat.strip().upper() for cat in creative.categories)
        payload = (c, tuple(cr for cr, _ in group), tuple(w for _, w in group), pctr)
        out.append(
            PodBid(
                Bid(f"li:{li.id}", li.tier, ecpm, deal, payload),
                duration,
                frozenset(advertisers),
                frozenset(categories),
            )
        )
    return out


def _external_pod_bid(ext: Any, deals: dict[str, Any]) -> PodBid:
    deal = None
    if ext.dealid and ext.dealid in deals:
        offered = deals[ext.dealid]
        deal = Deal(ext.dealid, offered.bidfloor, offered.bidfloor if offered.at == 3 else None)
    key = f"buyer:{ext.buyer_id}:{ext.bid_id}"
    # Without an advertiser domain the bid can only be kept apart from itself.
    advertisers = frozenset(d.strip().lower() for d in ext.adomain) or frozenset({key})
    return PodBid(
        Bid(key, PRICE_TIER, ext.price, deal, ext),
        ext.dur or 0,  # a bid without `dur` cannot be placed in a pod
        advertisers,
        frozenset(cat.strip().upper() for cat in ext.cat),
        ext.imp_id,
    )


def _decisions(result: PodResult, imps: dict[str, Imp], st: RequestState, outcome: Outcome) -> None:
    losses = result.losses
    # Buyers' bids left out of the pod get their loss notice. What a bid needed to get in is
    # the floor it missed; for a bid outbid in a pod no single price says it (the knapsack
    # also weighs durations and separation), so ${AUCTION_MIN_TO_WIN} stays empty.
    outcome.lost.extend(
        LostBid(bid.payload, code, result.missed_floors.get(bid.key))
        for bid, code in losses
        if isinstance(bid.payload, ExternalBid)
    )
    for ad in result.ads:
        imp = imps[ad.imp_id]
        bid = ad.ad.bid
        deal_id = bid.deal.deal_id if bid.deal else None
        if isinstance(bid.payload, tuple):
            candidate, creatives, weights, pctr = bid.payload
            propensity = 1.0
            if len(creatives) == 1:
                creative = creatives[0]
            else:  # the same draw as rng.choices(creatives, weights), its probability kept
                n = st.rng.choices(range(len(creatives)), weights)[0]
                creative, propensity = creatives[n], weights[n] / sum(weights)
            decision = Decision(
                imp=imp, price=ad.price, second=ad.second, floor=ad.floor,
                line_item=candidate.line_item, creative=creative, size=candidate.slot,
                deal_id=deal_id, losses=losses, score=bid.ecpm, propensity=propensity, pctr=pctr,
            )  # fmt: skip
            st.taken.add(candidate.line_item.id)
        else:
            ext = bid.payload
            size = f"{ext.w}x{ext.h}" if ext.w and ext.h else (imp.sizes[0] if imp.sizes else "")
            decision = Decision(
                imp=imp, price=ad.price, second=ad.second, floor=ad.floor,
                external=ext, size=size, deal_id=deal_id, losses=losses,
            )  # fmt: skip
        outcome.decisions.append(decision)
        losses = ()  # once per pod
    if not result.ads:
        # No decision to carry the losses: our line items' are still counted for delivery
        # diagnostics (buyers get no notice when nothing won, as for a single slot).
        outcome.rejected.extend(
            (int(b.key[3:]), "outbid" if code not in (100, 101) else "below_floor")
            for b, code in losses
            if b.key.startswith("li:")
        )
