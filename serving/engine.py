"""The decision for a whole request: candidates per slot, external bids, the auction.

Plain Python over the compiled index and an `AdContext`: it does no I/O (the serving app
fetches frequency counters and external bids first and passes them in), so it is tested
and benchmarked without a server. A line item wins at most one slot of a request.

The scan: the index gives sorted lists; they are merged lazily and walked until the
winner's group of equal bids and one bid below it in the same tier are found (all a
second-price auction needs), or `SCAN_LIMIT` candidates were looked at. A dynamic-down line
item may bid below the booked eCPM the lists are sorted by (`effective_ecpm`), never above
it, so the booked eCPM bounds what every later candidate can bid: the walk stops once that
bound is no higher than the best bid below the top. Every candidate
turned away on the way is recorded with its reason (at most `LOSS_LIMIT` per slot), for
delivery diagnostics; `explain=True` walks everything instead and reports every line item.
"""

import heapq
import itertools
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from serving.auction import BOOKED_TIERS, AuctionResult, Bid, Deal, clearing_price, run_auction
from serving.buyers.bids import ExternalBid, LostBid
from serving.context import AdContext, Imp, VideoSpec
from serving.index import Candidate, Index, slot_keys
from serving.openrtb.codes import LOSS_BELOW_DEAL_FLOOR, LOSS_BELOW_FLOOR, LOSS_NOT_IN_DEAL
from serving.scoring import RequestScores, model_ecpm, request_scores, scored
from serving.snapshot import PRICE_TIER, CreativeSnap, LineItemSnap, PlacementSnap
from serving.targeting import (
    CREATIVE_BLOCKED,
    RequestState,
    allowed_creatives,
    effective_ecpm,
    effective_floor,
    index_reason,
    pacing_reason,
    reject_reason,
)

SCAN_LIMIT = 200
MERGED_PREFIX = 64
MERGED_CACHE_SIZE = 50_000
LOSS_LIMIT = 16
BELOW_FLOOR = "below_floor"
OUTBID = "outbid"


@dataclass(frozen=True, slots=True)
class Decision:
    imp: Imp
    price: Decimal  # clearing CPM in the platform currency
    second: Decimal | None
    floor: Decimal
    # Exactly one of these two: our own line item and creative, or an external buyer's bid.
    line_item: LineItemSnap | None = None
    creative: CreativeSnap | None = None
    size: str = ""
    external: Any = None  # serving.buyers.bids.ExternalBid
    deal_id: str | None = None
    # Every other bid in the auction with its OpenRTB loss reason (for loss notices).
    losses: tuple[tuple[Bid, int], ...] = ()
    score: Decimal = Decimal(0)  # the winner's eCPM, what it ranked by
    # The chosen creative's probability under the line item's rotation (telemetry,
    # off-policy evaluation): its weight over the sum of the eligible creatives' weights.
    propensity: float = 1.0
    # The pCTR the live model priced our line item with (None: not scored, the prior held).
    pctr: float | None = None


@dataclass(slots=True)
class Outcome:
    decisions: list[Decision] = field(default_factory=list)
    # (line item id, reason) for candidates turned away; bounded per slot.
    rejected: list[tuple[int, str]] = field(default_factory=list)
    explain: list[dict[str, Any]] | None = None
    # Every external bid that lost an auction, with or without a winner (for loss notices).
    lost: list[LostBid] = field(default_factory=list)


def _rank(c: Candidate) -> tuple[int, Decimal, int]:
    return c.rank


def _merged(lists: list[list[Candidate]]) -> Iterable[Candidate]:
    if not lists:
        return ()
    if len(lists) == 1:
        return lists[0]
    return heapq.merge(*lists, key=_rank)


def _ordered(
    index: Index,
    placement_id: int,
    slots: list[str],
    country: str | None,
    devicetype: int | None,
    channel: str | None,
) -> Iterable[Candidate]:
    """The candidates of a request's keys in rank order. The first MERGED_PREFIX of each
    combination of keys are merged once per snapshot and cached (the combinations are few:
    placements x slot sets x countries x device types x channels that actually occur); a
    scan that needs more continues with a fresh merge."""
    key = (placement_id, tuple(slots), country, devicetype, channel)
    counts = index.request_keys
    counts[key] = counts.get(key, 0) + 1
    cached = index.merged.get(key)
    if cached is None:
        lists = index.candidate_lists(placement_id, slots, country, devicetype, channel)
        prefix = list(itertools.islice(_merged(lists), MERGED_PREFIX))
        cached = (prefix, lists if len(prefix) == MERGED_PREFIX else None)
        if len(index.merged) >= MERGED_CACHE_SIZE:
            index.merged.clear()
        index.merged[key] = cached
    prefix, rest = cached
    if rest is None:
        return prefix
    return itertools.chain(prefix, itertools.islice(_merged(rest), MERGED_PREFIX, None))


def _deal_for(li: LineItemSnap, imp: Imp, index: Index) -> Deal | None:
    """The first deal of the imp this line item is set up for, with its floor and price."""
    for offered in imp.deals:
        if offered.id in li.deal_ids:
            known = index.deals.get(offered.id)
            floor = max(offered.bidfloor, known.floor if known else Decimal(0))
            fixed = known.fixed_price if known else None
            if fixed is None and offered.at == 3:
                fixed = offered.bidfloor
            return Deal(offered.id, floor, fixed)
    return None


@dataclass(slots=True)
class _Scan:
    bids: list[Bid] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)
    reasons: dict[int, str] = field(default_factory=dict)  # explain only
    # explain only, where the model scored: line item -> (eCPM, its pCTR, pCTR per creative,
    # its pCVR (None: CPC), pCVR per creative (the pCVR model's; empty without one)).
    pctrs: dict[int, tuple[Decimal, float, dict[int, float], float | None, dict[int, float]]] = (
        field(default_factory=dict)
    )


def _scan(
    candidates: Iterable[Candidate],
    imp: Imp,
    st: RequestState,
    index: Index,
    floor: Decimal,
    exhaustive: bool,
    scores: RequestScores | None = None,
) -> _Scan:
    out = _Scan()
    seen: set[int] = set()
    tier: int | None = None  # the top bid's tier
    best: Decimal | None = None  # the top bid
    runner: Decimal | None = None  # the best bid below it
    looked = 0
    for c in candidates:
        li = c.line_item
        if li.id in seen:
            continue
        seen.add(li.id)
        if tier is not None and not exhaustive:
            if c.rank[0] != tier:
                break  # a lower tier never sets a higher tier's price
            if runner is not None and c.ecpm <= runner:
                break  # can neither win nor change the second price
        looked += 1
        if looked > SCAN_LIMIT and not exhaustive:
            break
        reason = reject_reason(c, imp, st)
        deal = None
        ecpm = c.ecpm
        creatives: tuple[CreativeSnap, ...] = ()
        weights: tuple[int, ...] = ()
        pctr: float | None = None
        if reason is None:
            deal = _deal_for(li, imp, index) if li.deal_ids else None
            if scores is not None and scored(li):
                # The model prices it from the creatives this imp may show.
                creatives, weights = allowed_creatives(c, imp, st.ctx)
                if creatives:
                    ecpm, pctr, pcvr = model_ecpm(c, creatives, weights, scores)
                    if exhaustive:
                        out.pctrs[li.id] = _explained(c, creatives, scores, ecpm, pctr, pcvr)
                ecpm = effective_ecpm(c, st, ecpm)
            else:
                ecpm = effective_ecpm(c, st)
            if ecpm < (deal.floor if deal else floor):
                reason = BELOW_FLOOR
        if reason is None:
            if pctr is None:
                creatives, weights = allowed_creatives(c, imp, st.ctx)
            if creatives and deal is None and imp.video and imp.video.mincpmpersec:
                creatives, weights = _per_second_floor(creatives, weights, imp.video, floor, ecpm)
                if not creatives:
                    reason = BELOW_FLOOR
            if reason is None:
                reason = pacing_reason(li, st) if creatives else CREATIVE_BLOCKED
        if reason is not None:
            if exhaustive:
                out.reasons[li.id] = reason
            elif len(out.rejected) < LOSS_LIMIT:
                out.rejected.append((li.id, reason))
            continue
        out.bids.append(Bid(f"li:{li.id}", li.tier, ecpm, deal, (c, creatives, weights, pctr)))
        if best is None:
            tier, best = li.tier, ecpm
        elif ecpm > best:
            best, runner = ecpm, best
        elif ecpm < best and (runner is None or ecpm > runner):
            runner = ecpm
    return out


def _explained(
    c: Candidate,
    creatives: tuple[CreativeSnap, ...],
    scores: RequestScores,
    ecpm: Decimal,
    pctr: float,
    pcvr: float | None,
) -> tuple[Decimal, float, dict[int, float], float | None, dict[int, float]]:
    ids = [cr.id for cr in creatives]
    by_creative = dict(zip(ids, scores.pctrs(c, creatives), strict=True))
    cvr = scores.cvr if pcvr is not None else None
    cvr_by_creative = dict(zip(ids, cvr.pctrs(c, creatives), strict=True)) if cvr else {}
    return ecpm, pctr, by_creative, pcvr, cvr_by_creative


def _per_second_floor(
    creatives: tuple[CreativeSnap, ...],
    weights: tuple[int, ...],
    spec: VideoSpec,
    floor: Decimal,
    ecpm: Decimal,
) -> tuple[tuple[CreativeSnap, ...], tuple[int, ...]]:
    """The creatives whose duration's floor (`mincpmpersec` x seconds) the bid reaches."""
    kept = [
        (cr, w)
        for cr, w in zip(creatives, weights, strict=True)
        if cr.format != "video" or spec.floor_for(cr.duration, floor) <= ecpm
    ]
    return tuple(cr for cr, _ in kept), tuple(w for _, w in kept)


def winner_floor(imp: Imp, floor: Decimal, seconds: int | None) -> Decimal:
    """The floor a video winner of `seconds` clears against: the per-second one when higher."""
    spec = imp.video
    if spec is None or not spec.mincpmpersec or not seconds:
        return floor
    return spec.floor_for(seconds, floor)


def _external_bids(imp: Imp, external: Sequence[Any]) -> list[Bid]:
    deals = {d.id: d for d in imp.deals}
    bids = []
    for ext in external:
        if ext.imp_id != imp.id:
            continue
        deal = None
        if ext.dealid and ext.dealid in deals:
            offered = deals[ext.dealid]
            fixed = offered.bidfloor if offered.at == 3 else None
            deal = Deal(ext.dealid, offered.bidfloor, fixed)
        bids.append(Bid(f"buyer:{ext.buyer_id}:{ext.bid_id}", PRICE_TIER, ext.price, deal, ext))
    return bids


def allowed_slots(imp: Imp, placement: PlacementSnap) -> list[str]:
    sizes = [s for s in imp.sizes if not placement.sizes or s in placement.sizes]
    return slot_keys(imp.formats, sizes)


def decide(
    index: Index,
    placement: PlacementSnap,
    ctx: AdContext,
    st: RequestState,
    external: Sequence[Any] = (),
) -> Outcome:
    outcome = Outcome(explain=[] if ctx.explain else None)
    geo, device = ctx.geo, ctx.device
    scores = request_scores(index, ctx, placement.id, st.personalise)
    for imp in ctx.imps:
        if ctx.pods and imp.is_pod:
            continue  # filled by serving.pods.fill.decide_pods
        slots = allowed_slots(imp, placement)
        candidates = _ordered(
            index, placement.id, slots, geo.country, device.devicetype, ctx.channel
        )
        floor = effective_floor(imp, placement.floor_cpm)
        scan = _scan(candidates, imp, st, index, floor, ctx.explain, scores)
        outcome.rejected.extend(scan.rejected)
        bids = scan.bids + _external_bids(imp, external)
        result = run_auction(
            bids,
            floor=floor,
            first_price=ctx.at == 1,
            private_auction=imp.private_auction,
            rng=st.rng,
        )
        if external:
            outcome.lost.extend(_lost_bids(result, floor))
        decision = _decision(imp, result, floor, st.rng, first_price=ctx.at == 1)
        if decision is not None:
            outcome.decisions.append(decision)
            if decision.line_item is not None:
                st.taken.add(decision.line_item.id)
        if outcome.explain is not None:
            outcome.explain.append(_explain(index, placement, ctx, imp, slots, scan, result))
    return outcome


def _lost_bids(result: AuctionResult, floor: Decimal) -> Iterator[LostBid]:
    """The external losers with what would have won: the floor they missed, or the price
    they had to beat when the winner was in their tier (a sponsorship is not for sale)."""
    winner = result.winner
    for bid, code in result.losses:
        if not isinstance(bid.payload, ExternalBid):
            continue
        if code == LOSS_BELOW_FLOOR:
            min_to_win: Decimal | None = floor
        elif code == LOSS_BELOW_DEAL_FLOOR and bid.deal is not None:
            min_to_win = bid.deal.floor
        elif winner is not None and winner.tier == bid.tier and code != LOSS_NOT_IN_DEAL:
            min_to_win = result.price
        else:
            min_to_win = None
        yield LostBid(bid.payload, code, min_to_win)


def _per_second_price(
    result: Any, imp: Imp, floor: Decimal, seconds: int | None, first_price: bool
) -> Decimal:
    """A second-price video winner clears against its own duration's floor when that is
    above the imp's (a first-price, booked or deal winner's price stands as it is)."""
    winner = result.winner
    if first_price or winner.deal is not None or winner.tier in BOOKED_TIERS:
        return Decimal(result.price)
    own = winner_floor(imp, floor, seconds)
    if own <= floor:
        return Decimal(result.price)
    return clearing_price(winner.ecpm, result.second, own)


def _decision(
    imp: Imp, result: Any, floor: Decimal, rng: random.Random, first_price: bool = False
) -> Decision | None:
    winner = result.winner
    if winner is None:
        return None
    deal_id = winner.deal.deal_id if winner.deal else None
    per_second = imp.video is not None and imp.video.mincpmpersec
    if isinstance(winner.payload, tuple):
        candidate, creatives, weights, pctr = winner.payload
        propensity = 1.0
        if len(creatives) == 1:
            creative = creatives[0]
        else:  # one draw, as rng.choices(creatives, weights) would make
            n = rng.choices(range(len(creatives)), weights)[0]
            creative, propensity = creatives[n], weights[n] / sum(weights)
        price = result.price
        if per_second and creative.format == "video":
            price = _per_second_price(result, imp, floor, creative.duration, first_price)
        return Decision(
            imp=imp, price=price, second=result.second, floor=floor,
            line_item=candidate.line_item, creative=creative,
            size=creative.size if creative.format == "banner" else candidate.slot,
            deal_id=deal_id, losses=result.losses, score=winner.ecpm, propensity=propensity,
            pctr=pctr,
        )  # fmt: skip
    ext = winner.payload
    size = f"{ext.w}x{ext.h}" if ext.w and ext.h else (imp.sizes[0] if imp.sizes else "")
    price = result.price
    if per_second:
        price = _per_second_price(result, imp, floor, ext.dur, first_price)
    return Decision(
        imp=imp, price=price, second=result.second, floor=floor,
        external=ext, size=size, deal_id=deal_id, losses=result.losses, score=winner.ecpm,
    )  # fmt: skip


def _explain(
    index: Index,
    placement: PlacementSnap,
    ctx: AdContext,
    imp: Imp,
    slots: list[str],
    scan: _Scan,
    result: Any,
) -> dict[str, Any]:
    """Every line item of the snapshot with what happened to it for this imp."""
    outcome: dict[str, str] = {}
    for bid, code in result.losses:
        outcome[bid.key] = BELOW_FLOOR if code in (100, 101) else OUTBID
    if result.winner is not None:
        outcome[result.winner.key] = "won"
    slot_set = set(slots)
    lines = []
    for li in _sorted_line_items(index.line_items.values()):
        has_slot = any(
            (c.format == "banner" and c.size in slot_set and c.size in li.sizes)
            or (c.format != "banner" and c.format in slot_set)
            for c in (index.creatives.get(i) for i in li.creative_ids)
            if c is not None
        )
        reason = index_reason(li, slots, has_slot, placement.id, ctx)
        if reason is None:
            reason = scan.reasons.get(li.id) or outcome.get(f"li:{li.id}", "not_reached")
        line: dict[str, Any] = {"line_item": li.id, "campaign": li.campaign_id, "result": reason}
        scored_here = scan.pctrs.get(li.id)
        if scored_here is not None:
            ecpm, pctr, per_creative, pcvr, pcvr_per_creative = scored_here
            line["pctr"] = round(pctr, 6)
            line["ecpm"] = str(ecpm)
            line["creative_pctr"] = {str(k): round(v, 6) for k, v in per_creative.items()}
            if pcvr is not None:  # a target-CPA line item: CPA x pCTR x pCVR
                line["pcvr"] = round(pcvr, 6)
                line["pcvr_from"] = "model" if pcvr_per_creative else "smoothed"
                if pcvr_per_creative:
                    line["creative_pcvr"] = {
                        str(k): round(v, 6) for k, v in pcvr_per_creative.items()
                    }
        lines.append(line)
    buyers = [
        {"bid": key, "result": result_text}
        for key, result_text in outcome.items()
        if key.startswith("buyer:")
    ]
    return {
        "imp": imp.id,
        "floor": str(effective_floor(imp, placement.floor_cpm)),
        "price": str(result.price) if result.price is not None else None,
        "line_items": lines,
        "external_bids": buyers,
    }


def _sorted_line_items(items: Iterable[LineItemSnap]) -> Iterator[LineItemSnap]:
    return iter(sorted(items, key=lambda li: li.id))
