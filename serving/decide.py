"""The decision: which line item wins each slot, and at what price.

Plain Python over plain data: it takes the compiled index, the slots and the time, and
touches neither Django nor Redis, so it is tested without a server.
"""

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from serving.snapshot import Candidate, CreativeSnap, Index, LineItemSnap, PlacementSnap

ONE_CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class SlotRequest:
    id: str
    sizes: Sequence[str]


@dataclass(frozen=True, slots=True)
class Decision:
    slot_id: str
    line_item: LineItemSnap
    creative: CreativeSnap
    size: str
    price: Decimal  # clearing CPM


def clearing_price(winner: Decimal, runner_up: Decimal | None, floor: Decimal) -> Decimal:
    """Second price: a cent over the larger of runner-up and floor, never above the bid."""
    reference = floor if runner_up is None else max(runner_up, floor)
    return min(winner, reference + ONE_CENT)


def _top_two(
    candidates: Iterable[Candidate],
    now: float,
    floor: Decimal,
    exhausted: frozenset[int] | set[int],
    taken: set[int],
) -> list[Candidate]:
    # Lists are sorted by bid, so the first two eligible entries are the best two.
    found: list[Candidate] = []
    for c in candidates:
        li = c.line_item
        if li.cpm < floor:
            break
        if (
            li.id in taken
            or li.campaign_id in exhausted
            or li.start > now
            or (li.end is not None and li.end <= now)
        ):
            continue
        found.append(c)
        if len(found) == 2:
            break
    return found


def decide(
    index: Index,
    placement: PlacementSnap,
    slots: Sequence[SlotRequest],
    now: float,
    exhausted: frozenset[int] | set[int] = frozenset(),
    rng: random.Random | None = None,
) -> list[Decision]:
    """Run one second-price auction per slot; a line item wins at most one slot per request."""
    choices = (rng or random).choices
    floor = placement.floor_cpm
    taken: set[int] = set()
    decisions = []
    for slot in slots:
        best: dict[int, Candidate] = {}
        for size in slot.sizes:
            if placement.sizes and size not in placement.sizes:
                continue
            for candidates in index.candidate_lists(placement.id, size):
                for c in _top_two(candidates, now, floor, exhausted, taken):
                    best.setdefault(c.line_item.id, c)
        if not best:
            continue
        ranked = sorted(best.values(), key=lambda c: (-c.line_item.cpm, c.line_item.id))
        winner = ranked[0]
        runner_up = ranked[1].line_item.cpm if len(ranked) > 1 else None
        taken.add(winner.line_item.id)
        decisions.append(
            Decision(
                slot_id=slot.id,
                line_item=winner.line_item,
                creative=choices(winner.creatives, winner.weights)[0],
                size=winner.size,
                price=clearing_price(winner.line_item.cpm, runner_up, floor),
            )
        )
    return decisions
