"""The pod auction: which ads fill a CTV ad break, in which order, at what price.

A pure function over plain values, like `serving.auction` (whose single-slot rules it keeps
for each ad). Two shapes of pod (OpenRTB 2.6):

- **dynamic**: one imp with `poddur` seconds and at most `maxseq` ads; each ad's duration
  must fit the imp's `minduration`/`maxduration` or `rqddurs`, and the durations add up to
  no more than `poddur`;
- **structured**: several imps sharing `podid`, one ad each, each with its own duration
  rule and floor.

What is maximised: the pod's value, the sum over its ads of their eCPM, with the priority
tiers kept as in a single slot. A sponsorship ad is worth more than any pod without it, a
guaranteed ad more than any pod of price ads alone, a house ad almost nothing (it fills time
nobody bought, never displaces a bid). Values are integers (micro-CPM plus the tier bonus),
so the search does no Decimal arithmetic.

Competitive separation: no two ads of one advertiser (our advertiser id, or any shared
advertiser domain) and no two ads sharing an IAB category code in a pod. A line item with
creatives of several durations enters once per duration; its advertiser keeps it to one ad.

The search is a depth-first branch and bound over the candidates in value order (the first
pod it finds is the greedy one), pruned by two upper bounds (the best `k` values left, and
the best value per second left times the seconds left). It is exact when it finishes within
`SEARCH_NODES` nodes, which covers every realistic break (a few dozen candidates); past
that it returns the best pod found so far, never worse than greedy (`PodResult.exact` says
which). Candidates are the best `POD_CANDIDATES` by value after the floors.

Price of each ad: its single-slot price, where "second" is the best bid of the same tier
that did not make the pod and bid no more than this ad (bids that outbid it but did not fit
the time or the separation did not compete with it on price). Fixed-price deals, first
price (`at = 1`) and booked tiers as in `serving.auction`.
"""

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from serving.auction import BOOKED_TIERS, Bid, clearing_price
from serving.context import VideoSpec
from serving.openrtb.codes import (
    LOSS_BELOW_DEAL_FLOOR,
    LOSS_BELOW_FLOOR,
    LOSS_INVALID_RESPONSE,
    LOSS_NOT_IN_DEAL,
    LOSS_OUTBID,
    LOSS_OUTBID_BY_DEAL,
)

POD_CANDIDATES = 32
SEARCH_NODES = 4000
HOUSE_TIER = 3
_MICROS = 1_000_000


@dataclass(frozen=True, slots=True)
class PodBid:
    """One ad that could go into the pod."""

    bid: Bid  # key, tier, eCPM, deal, payload: as in a single-slot auction
    duration: int  # seconds
    advertisers: frozenset[str]  # separation: "adv:<id>" and/or advertiser domains
    categories: frozenset[str] = frozenset()  # IAB category codes, upper case
    imp_id: str | None = None  # an external bid is for one imp; ours fit any slot


@dataclass(frozen=True, slots=True)
class PodSlot:
    """What one imp of the pod accepts. A dynamic pod is one slot with `spec.poddur`."""

    imp_id: str
    spec: VideoSpec
    floor: Decimal  # CPM, platform currency: the imp's and placement's
    private_auction: bool = False


@dataclass(frozen=True, slots=True)
class PodAd:
    ad: PodBid
    imp_id: str
    sequence: int  # 1-based position in the break
    price: Decimal  # clearing CPM
    second: Decimal | None
    floor: Decimal


@dataclass(frozen=True, slots=True)
class PodResult:
    ads: tuple[PodAd, ...]
    losses: tuple[tuple[Bid, int], ...]  # every bid that is not in the pod, once per key
    exact: bool = True
    # The floor each bid lost below (100/101), by key: its ${AUCTION_MIN_TO_WIN}.
    missed_floors: Mapping[str, Decimal] = field(default_factory=dict)

    @property
    def duration(self) -> int:
        return sum(a.ad.duration for a in self.ads)


@dataclass(slots=True)
class _Option:
    """A bid that may fill a slot, with its floor there and its integer value."""

    pod_bid: PodBid
    floor: Decimal
    value: int


@dataclass(slots=True)
class _Search:
    nodes: int = 0
    best_value: int = -1
    best: list[_Option | None] = field(default_factory=list)
    exact: bool = True


def _floor_problem(pb: PodBid, slot: PodSlot) -> tuple[int | None, Decimal]:
    """(loss code or None, the floor) of a bid in a slot."""
    spec, bid = slot.spec, pb.bid
    if slot.private_auction and bid.deal is None:
        return LOSS_NOT_IN_DEAL, slot.floor
    if not spec.allows_duration(pb.duration) or pb.duration <= 0:
        return LOSS_INVALID_RESPONSE, slot.floor
    if spec.poddur is not None and pb.duration > spec.poddur:
        return LOSS_INVALID_RESPONSE, slot.floor
    if bid.deal is not None:  # the deal's floor takes precedence (OpenRTB 2.6)
        floor = bid.deal.floor
        return (LOSS_BELOW_DEAL_FLOOR if bid.ecpm < floor else None), floor
    floor = spec.floor_for(pb.duration, slot.floor)
    return (LOSS_BELOW_FLOOR if bid.ecpm < floor else None), floor


def _values(bids: Sequence[PodBid], maxseq: int) -> dict[str, int]:
    """Integer value per bid key: micro-CPM plus a bonus that makes a higher booked tier
    worth more than any number of ads of the tiers below."""
    top = max((int(pb.bid.ecpm * _MICROS) for pb in bids), default=0)
    guaranteed = 1 + maxseq * top  # more than any pod of price ads
    sponsorship = (maxseq + 1) * guaranteed
    bonus = {0: sponsorship, 1: guaranteed}
    out = {}
    for pb in bids:
        micros = int(pb.bid.ecpm * _MICROS)
        if pb.bid.tier >= HOUSE_TIER:
            out[pb.bid.key] = 1 if micros > 0 else 0  # fills time, never displaces
        else:
            out[pb.bid.key] = micros + bonus.get(pb.bid.tier, 0)
    return out


def _conflicts(pb: PodBid, advertisers: set[str], categories: set[str]) -> bool:
    return not advertisers.isdisjoint(pb.advertisers) or not categories.isdisjoint(pb.categories)


def _price(
    option: _Option, losers: Sequence[_Option], first_price: bool
) -> tuple[Decimal, Decimal | None]:
    bid = option.pod_bid.bid
    below = [
        o.pod_bid.bid.ecpm
        for o in losers
        if o.pod_bid.bid.tier == bid.tier and o.pod_bid.bid.ecpm <= bid.ecpm
    ]
    second = max(below) if below else None
    deal = bid.deal
    if deal is not None and deal.fixed_price is not None:
        return deal.fixed_price, second
    if first_price or bid.tier in BOOKED_TIERS:
        return bid.ecpm, second
    return clearing_price(bid.ecpm, second, option.floor), second


def _order(options: list[_Option], rng: random.Random) -> list[_Option]:
    # Value first; equal values in the request's random order, so a replay is exact.
    keyed = [(-o.value, rng.random(), n, o) for n, o in enumerate(options)]
    keyed.sort(key=lambda t: (t[0], t[1], t[2]))
    return [o for *_, o in keyed]


def _losses(
    bids: Sequence[PodBid],
    placed: set[str],
    invalid: dict[str, int],
    deal_won: bool,
) -> tuple[tuple[Bid, int], ...]:
    outbid = LOSS_OUTBID_BY_DEAL if deal_won else LOSS_OUTBID
    out: list[tuple[Bid, int]] = []
    seen: set[str] = set()
    for pb in bids:
        key = pb.bid.key
        if key in placed or key in seen:
            continue
        seen.add(key)
        out.append((pb.bid, invalid.get(key, outbid)))
    return tuple(out)


def run_dynamic_pod(
    bids: Sequence[PodBid],
    slot: PodSlot,
    *,
    first_price: bool = False,
    rng: random.Random,
    separated_from: Sequence[PodBid] = (),
) -> PodResult:
    """Fill `slot.spec.poddur` seconds with at most `slot.spec.maxseq` ads, none of them
    sharing an advertiser or category with `separated_from` (the ads already placed in the
    structured slots of the same hybrid pod)."""
    spec = slot.spec
    poddur = spec.poddur or 0
    maxseq = spec.maxseq or POD_CANDIDATES
    bids = [pb for pb in bids if pb.imp_id is None or pb.imp_id == slot.imp_id]
    advertisers = {a for pb in separated_from for a in pb.advertisers}
    categories = {c for pb in separated_from for c in pb.categories}
    if separated_from:  # already in the break: neither a candidate nor a loser here
        placed_before = {pb.bid.key for pb in separated_from}
        bids = [pb for pb in bids if pb.bid.key not in placed_before]
    values = _values(bids, maxseq)
    valid: list[_Option] = []
    invalid: dict[str, int] = {}
    missed: dict[str, Decimal] = {}
    for pb in bids:
        code, floor = _floor_problem(pb, slot)
        if code is None and separated_from and _conflicts(pb, advertisers, categories):
            code = LOSS_OUTBID  # kept apart from the hybrid pod's structured ads
        if code is not None:
            invalid.setdefault(pb.bid.key, code)
            if code in (LOSS_BELOW_FLOOR, LOSS_BELOW_DEAL_FLOOR):
                missed.setdefault(pb.bid.key, floor)
        else:
            valid.append(_Option(pb, floor, values[pb.bid.key]))
    options = _order(valid, rng)[:POD_CANDIDATES]
    search = _Search()
    _dynamic_search(options, poddur, maxseq, search)
    chosen = [o for o in search.best if o is not None]
    placed_keys = {o.pod_bid.bid.key for o in chosen}
    losers = [o for o in valid if o.pod_bid.bid.key not in placed_keys]
    ads = []
    for n, option in enumerate(chosen, start=1):
        price, second = _price(option, losers, first_price)
        ads.append(PodAd(option.pod_bid, slot.imp_id, n, price, second, option.floor))
    # A key with a valid option lost on merit even if another of its durations was invalid.
    for o in valid:
        invalid.pop(o.pod_bid.bid.key, None)
    deal_won = any(o.pod_bid.bid.deal is not None for o in chosen)
    lost = _losses(bids, placed_keys, invalid, deal_won)
    return PodResult(tuple(ads), lost, search.exact, _missed(missed, invalid))


def _dynamic_search(options: list[_Option], poddur: int, maxseq: int, search: _Search) -> None:
    n = len(options)
    prefix = [0] * (n + 1)  # prefix[i] = sum of the i best values
    for i, o in enumerate(options):
        prefix[i + 1] = prefix[i] + o.value
    density = [0] * (n + 1)  # density[i] = the best value per second from i on (rounded up)
    for i in range(n - 1, -1, -1):
        o = options[i]
        density[i] = max(density[i + 1], -(-o.value // max(o.pod_bid.duration, 1)))
    chosen: list[_Option] = []
    advertisers: set[str] = set()
    categories: set[str] = set()

    def visit(i: int, time_left: int, count_left: int, value: int) -> None:
        search.nodes += 1
        if value > search.best_value:
            search.best_value, search.best = value, list(chosen)
        if i == n or count_left == 0 or time_left <= 0:
            return
        if search.nodes >= SEARCH_NODES:
            search.exact = False
            return
        bound = min(prefix[min(n, i + count_left)] - prefix[i], density[i] * time_left)
        if value + bound <= search.best_value:
            return
        option = options[i]
        pb = option.pod_bid
        if pb.duration <= time_left and not _conflicts(pb, advertisers, categories):
            chosen.append(option)
            added_adv = pb.advertisers - advertisers
            added_cat = pb.categories - categories
            advertisers.update(added_adv)
            categories.update(added_cat)
            visit(i + 1, time_left - pb.duration, count_left - 1, value + option.value)
            chosen.pop()
            advertisers.difference_update(added_adv)
            categories.difference_update(added_cat)
        visit(i + 1, time_left, count_left, value)

    visit(0, poddur, maxseq, 0)


def run_structured_pod(
    bids: Sequence[PodBid],
    slots: Sequence[PodSlot],
    *,
    first_price: bool = False,
    rng: random.Random,
) -> PodResult:
    """One ad per slot, in the slots' order, separated across the whole pod."""
    imp_ids = {slot.imp_id for slot in slots}
    bids = [pb for pb in bids if pb.imp_id is None or pb.imp_id in imp_ids]
    values = _values(bids, len(slots))
    per_slot: list[list[_Option]] = []
    invalid: dict[str, int] = {}
    missed: dict[str, Decimal] = {}
    valid_keys: set[str] = set()
    for slot in slots:
        options = []
        for pb in bids:
            if pb.imp_id is not None and pb.imp_id != slot.imp_id:
                continue
            code, floor = _floor_problem(pb, slot)
            if code is not None:
                invalid.setdefault(pb.bid.key, code)
                if code in (LOSS_BELOW_FLOOR, LOSS_BELOW_DEAL_FLOOR):
                    # The lowest floor it missed is what would have let it in somewhere.
                    missed[pb.bid.key] = min(floor, missed.get(pb.bid.key, floor))
            else:
                valid_keys.add(pb.bid.key)
                options.append(_Option(pb, floor, values[pb.bid.key]))
        per_slot.append(_order(options, rng)[:POD_CANDIDATES])
    search = _Search()
    _structured_search(per_slot, search)
    placed_keys = {o.pod_bid.bid.key for o in search.best if o is not None}
    ads = []
    sequence = 0
    for slot, option, options in zip(slots, search.best, per_slot, strict=True):
        if option is None:
            continue
        sequence += 1
        losers = [o for o in options if o.pod_bid.bid.key not in placed_keys]
        price, second = _price(option, losers, first_price)
        ads.append(PodAd(option.pod_bid, slot.imp_id, sequence, price, second, option.floor))
    for key in valid_keys:
        invalid.pop(key, None)
    deal_won = any(a.ad.bid.deal is not None for a in ads)
    lost = _losses(bids, placed_keys, invalid, deal_won)
    return PodResult(tuple(ads), lost, search.exact, _missed(missed, invalid))


def _missed(missed: dict[str, Decimal], invalid: dict[str, int]) -> dict[str, Decimal]:
    """The floors of the bids that lost below one (and not for another reason)."""
    return {
        key: floor
        for key, floor in missed.items()
        if invalid.get(key) in (LOSS_BELOW_FLOOR, LOSS_BELOW_DEAL_FLOOR)
    }


def _structured_search(per_slot: list[list[_Option]], search: _Search) -> None:
    n = len(per_slot)
    suffix = [0] * (n + 1)  # the best value each remaining slot could add
    for j in range(n - 1, -1, -1):
        suffix[j] = suffix[j + 1] + (per_slot[j][0].value if per_slot[j] else 0)
    chosen: list[_Option | None] = []
    keys: set[str] = set()
    advertisers: set[str] = set()
    categories: set[str] = set()
    search.best = [None] * n  # an empty pod until one is found

    def visit(j: int, value: int) -> None:
        search.nodes += 1
        if j == n:
            if value > search.best_value:
                search.best_value, search.best = value, list(chosen)
            return
        if search.nodes >= SEARCH_NODES:
            search.exact = False
            if value > search.best_value:  # keep what was found, the rest unfilled
                search.best_value = value
                search.best = [*chosen, *([None] * (n - j))]
            return
        if value + suffix[j] <= search.best_value:
            return
        for option in per_slot[j]:
            pb = option.pod_bid
            if pb.bid.key in keys or _conflicts(pb, advertisers, categories):
                continue
            added_adv = pb.advertisers - advertisers
            added_cat = pb.categories - categories
            keys.add(pb.bid.key)
            advertisers.update(added_adv)
            categories.update(added_cat)
            chosen.append(option)
            visit(j + 1, value + option.value)
            chosen.pop()
            keys.discard(pb.bid.key)
            advertisers.difference_update(added_adv)
            categories.difference_update(added_cat)
        chosen.append(None)
        visit(j + 1, value)
        chosen.pop()

    visit(0, 0)
