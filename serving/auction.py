"""The auction for one slot, as a pure function over `Decimal`s.

The rules (DESIGN.md, step 5), in order:

1. A bid below its floor loses (OpenRTB loss 100; 101 for a deal bid, whose floor is the
   deal's instead of the slot's). With `pmp.private_auction = 1` only deal bids take part.
2. Priority tiers first: sponsorship (0) beats guaranteed (1) beats price (2) beats house (3),
   whatever the amounts. Inside a tier the highest eCPM wins.
3. Ties on (tier, eCPM) are broken by the request's random generator: `random.Random`
   seeded with the request id in serving, with a fixed seed in tests, so a decision can be
   replayed exactly (`?explain=1`) and no line item wins ties by its id.
4. The clearing price:
   - a fixed-price deal (`at = 3`) clears at the deal price;
   - first price (`at = 1`): the winner pays its bid;
   - sponsorship and guaranteed line items pay their booked rate (their bid): they are sold
     ahead of the auction, not through it;
   - otherwise second price, `min(bid, max(second, floor) + 0.01)`, where "second" is the
     best other valid bid of the winner's tier (a lower tier never sets a higher tier's
     price) and the floor stands in when there is none.
"""

import random
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from serving.openrtb.codes import (
    LOSS_BELOW_DEAL_FLOOR,
    LOSS_BELOW_FLOOR,
    LOSS_NOT_IN_DEAL,
    LOSS_OUTBID,
    LOSS_OUTBID_BY_DEAL,
)

ONE_CENT = Decimal("0.01")
BOOKED_TIERS = frozenset({0, 1})  # sponsorship, guaranteed


@dataclass(frozen=True, slots=True)
class Deal:
    deal_id: str
    floor: Decimal
    fixed_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Bid:
    key: str  # "li:12" or "buyer:3:<bid id>": unique within the auction
    tier: int
    ecpm: Decimal  # what it ranks by, CPM in the platform currency
    deal: Deal | None = None
    payload: Any = None  # the candidate or external bid it stands for


@dataclass(frozen=True, slots=True)
class AuctionResult:
    winner: Bid | None
    price: Decimal | None  # clearing CPM
    second: Decimal | None  # the best other bid of the winner's tier, if any
    losses: tuple[tuple[Bid, int], ...]  # every other bid with its OpenRTB loss reason


def clearing_price(winner: Decimal, second: Decimal | None, floor: Decimal) -> Decimal:
    """Second price: a cent over the larger of runner-up and floor, never above the bid."""
    reference = floor if second is None else max(second, floor)
    return min(winner, reference + ONE_CENT)


def run_auction(
    bids: Sequence[Bid],
    *,
    floor: Decimal,
    first_price: bool = False,
    private_auction: bool = False,
    rng: random.Random,
) -> AuctionResult:
    losses: list[tuple[Bid, int]] = []
    valid: list[Bid] = []
    for bid in bids:
        if private_auction and bid.deal is None:
            losses.append((bid, LOSS_NOT_IN_DEAL))
        elif bid.deal is not None and bid.ecpm < bid.deal.floor:
            losses.append((bid, LOSS_BELOW_DEAL_FLOOR))
        elif bid.deal is None and bid.ecpm < floor:
            losses.append((bid, LOSS_BELOW_FLOOR))
        else:
            valid.append(bid)
    if not valid:
        return AuctionResult(None, None, None, tuple(losses))

    valid.sort(key=lambda b: (b.tier, -b.ecpm))
    best = valid[0]
    tied = [b for b in valid if b.tier == best.tier and b.ecpm == best.ecpm]
    winner = tied[0] if len(tied) == 1 else rng.choice(tied)
    others = [b for b in valid if b is not winner]
    same_tier = [b.ecpm for b in others if b.tier == winner.tier]
    second = max(same_tier) if same_tier else None
    price = _price(winner, second, floor, first_price)
    reason = LOSS_OUTBID_BY_DEAL if winner.deal is not None else LOSS_OUTBID
    losses.extend((b, reason) for b in others)
    return AuctionResult(winner, price, second, tuple(losses))


def _price(winner: Bid, second: Decimal | None, floor: Decimal, first_price: bool) -> Decimal:
    deal = winner.deal
    if deal is not None and deal.fixed_price is not None:
        return deal.fixed_price
    if first_price or winner.tier in BOOKED_TIERS:
        return winner.ecpm
    return clearing_price(winner.ecpm, second, deal.floor if deal is not None else floor)
