"""The pacing controller: pure arithmetic over one budget's spend, its schedule and its
traffic, with no I/O (campaigns.pacing.services reads Redis and writes the rates).

A `Track` is what the controller remembers about one budget between ticks: a campaign's
spend, its impression or click goal, or a line item's own budget. Each tick:

1. Learn the demand: how much the budget would spend over a whole day of traffic at a
   pass-through of 1, as the ratio of two exponentially forgetting sums, quantity spent over
   (pass-through in effect * traffic share elapsed). Traffic share, not time, so the night
   and the noon peak measure the same thing, and the estimate survives the diurnal curve.
   A second, fast estimate watches for a change (a competitor ran out of budget, traffic
   stopped or came back): when the two differ by more than the fast one's own Poisson noise
   (from the wins behind it) allows, the slow one restarts from the fast one instead of
   taking its whole memory to catch up. Both memories are capped in time too, so the night's
   thin traffic does not stretch them to hours.
2. Plan: the schedule's spend by `CATCH_UP` from now, minus what is spent, is what should be
   spent over the next `CATCH_UP`; the demand says how much that much traffic would bring at
   full rate; their ratio is the pass-through, clamped to [0, 1]. Being ahead lowers it,
   behind raises it, and an error decays like exp(-t / CATCH_UP) with no overshoot when the
   demand estimate is right (a feed-forward term plus integral action on the spend error,
   with the gain scheduled by the estimated plant; docs/pacing.md has the derivation).
3. Anti-windup: when the budget cannot get the rate it wants (it wants more than 1, or a
   tighter budget of the same line items holds it back), the plan is re-anchored: what is
   left is spread over the rest of the schedule from here. The shortfall of a line item
   that cannot spend is forgiven instead of piling up into a burst when traffic comes back.
"""

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

# How far ahead the plan aims: errors are corrected over about this much of the day.
CATCH_UP = timedelta(minutes=30)
# The demand estimate forgets with this much of the day's traffic (about 45 minutes at an
# average hour's traffic), or this much time if that is shorter (the night's traffic would
# otherwise stretch the memory to hours); the fast one with about six minutes'.
DEMAND_MEMORY = 0.03
FAST_MEMORY = 0.004
DEMAND_MEMORY_TIME = 45 * 60.0
FAST_MEMORY_TIME = 6 * 60.0
# A fast estimate this many times above or below the slow one is a change, not noise (when
# the number of events behind the estimates is not known).
SHIFT = 2.0
# With the events known (impressions or clicks won), a change is a fast estimate more than
# `SHIFT_SIGMAS` of its own Poisson noise away from the slow one, and at least `MIN_SHIFT`.
SHIFT_SIGMAS = 3.0
MIN_SHIFT = 0.15
MIN_SHIFT_EVENTS = 20.0
# Less information than this (rate * traffic share) and an estimate is not updated; a day
# with less than DAY_EVIDENCE does not set the next day's starting estimate.
MIN_EVIDENCE = 0.0001
DAY_EVIDENCE = 0.01
# A new day (every budget fresh, others back in the auction) weighs what was learnt before
# it this much: today's first evidence takes over quickly.
NEW_DAY_WEIGHT = 0.25
# A rate reaches the serving processes at their next read (once a second), part of the way
# into the interval it is meant for: this much of each interval still ran on the rate
# before it.
LAG_SHARE = 0.5
# Desired rates within this of the applied one count as served (no re-anchoring).
SLACK = 1e-3
# A budget whose demand is not known yet (a new campaign) starts at this pass-through and
# rises as the evidence comes in: probing low and catching up costs a little delivery
# early; probing at full rate would spend a morning's budget in minutes.
FIRST_RATE = 0.1


@dataclass
class Track:
    day: str = ""
    at: float = 0.0  # clock seconds of the last tick
    spent: float = 0.0  # the day's quantity at the last tick
    traffic: float = 0.0  # the day's traffic share at the last tick
    applied: float = 1.0  # pass-through written at the last tick (own * parent)
    previous: float = 1.0  # ... and at the tick before (1: nothing written yet)
    rate: float = 1.0  # own rate written at the last tick
    demand: float | None = None  # quantity per whole day of traffic at pass-through 1
    num: float = 0.0
    den: float = 0.0
    fast_num: float = 0.0
    fast_den: float = 0.0
    fast_events: float = 0.0  # events (impressions, clicks) behind the fast estimate
    events: float = 0.0  # the day's events at the last tick
    # the same two sums over the whole of the current day, without forgetting
    day_num: float = 0.0
    day_den: float = 0.0
    anchor_spent: float = 0.0
    anchor_fraction: float = 0.0
    target: float = 0.0
    desired: float = 1.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> "Track":
        if not data:
            return cls()
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass(frozen=True)
class Tick:
    """One budget's reading at a tick."""

    day: str
    at: float  # clock seconds
    spent: float
    target: float  # the day's budget (or goal) in the same unit as `spent`
    traffic: float  # the day's traffic share so far
    traffic_ahead: float  # ... by CATCH_UP from now
    fraction: Callable[[float], float]  # traffic share → scheduled share of the target
    events: float | None = None  # impressions (or clicks) won today: the estimates' noise


def plan(track: Track, tick: Tick, traffic: float) -> float:
    """What the (re-anchored) schedule wants spent once `traffic` has passed."""
    base, start = track.anchor_spent, track.anchor_fraction
    if start >= 1.0:
        return tick.target
    share = (tick.fraction(traffic) - start) / (1.0 - start)
    return base + (tick.target - base) * min(1.0, max(0.0, share))


def learn(track: Track, tick: Tick) -> None:
    """Fold the interval since the last tick into the demand estimate. A new day starts from
    zero spend and from yesterday's average demand (the last minutes of a day, budgets
    finishing and others out, say less about the next morning than the whole day does),
    weighed lightly (`NEW_DAY_WEIGHT`): today's first evidence soon decides."""
    if track.at == 0:  # a budget seen for the first time: a baseline, nothing to learn yet
        track.day, track.spent, track.traffic = tick.day, tick.spent, tick.traffic
        track.events = tick.events or 0.0
    elif track.day != tick.day:
        track.day, track.spent, track.traffic, track.events = tick.day, 0.0, 0.0, 0.0
        track.anchor_spent = track.anchor_fraction = 0.0
        if track.day_den >= DAY_EVIDENCE:
            track.demand = track.day_num / track.day_den
        track.den *= NEW_DAY_WEIGHT
        track.fast_den *= NEW_DAY_WEIGHT
        track.fast_events *= NEW_DAY_WEIGHT
        if track.demand is not None:
            track.num = track.demand * track.den
            track.fast_num = track.demand * track.fast_den
        track.day_num = track.day_den = 0.0
    elapsed = tick.traffic - track.traffic
    gained = tick.spent - track.spent
    seconds = max(0.0, tick.at - track.at)
    if elapsed > 0 and gained >= 0:
        events = max(0.0, (tick.events or 0.0) - track.events)
        evidence = ((1 - LAG_SHARE) * track.applied + LAG_SHARE * track.previous) * elapsed
        forget = math.exp(-max(elapsed / DEMAND_MEMORY, seconds / DEMAND_MEMORY_TIME))
        track.num = track.num * forget + gained
        track.den = track.den * forget + evidence
        forget = math.exp(-max(elapsed / FAST_MEMORY, seconds / FAST_MEMORY_TIME))
        track.fast_num = track.fast_num * forget + gained
        track.fast_den = track.fast_den * forget + evidence
        track.fast_events = track.fast_events * forget + events
        track.day_num += gained
        track.day_den += evidence
        if track.fast_den >= MIN_EVIDENCE and track.den >= MIN_EVIDENCE:
            fast, slow = track.fast_num / track.fast_den, track.num / track.den
            if _shifted(fast, slow, track.fast_events if tick.events is not None else None):
                track.num, track.den = track.fast_num, track.fast_den
        if track.den >= MIN_EVIDENCE:
            track.demand = track.num / track.den
    track.at, track.spent, track.traffic, track.target = (
        tick.at,
        tick.spent,
        tick.traffic,
        tick.target,
    )
    if tick.events is not None:
        track.events = tick.events


def _shifted(fast: float, slow: float, events: float | None) -> bool:
    """Whether the fast estimate says the demand changed: by more than `SHIFT` when the
    events behind it are not known; by more than its own noise (`SHIFT_SIGMAS` standard
    deviations of a Poisson count) and `MIN_SHIFT` when they are."""
    if events is None:
        return fast > slow * SHIFT or fast * SHIFT < slow
    if events < MIN_SHIFT_EVENTS:
        return False  # too few to tell a change from noise
    if slow <= 0:
        return fast > 0
    threshold = 1.0 + max(MIN_SHIFT, SHIFT_SIGMAS / math.sqrt(max(events, 1.0)))
    return fast > slow * threshold or fast * threshold < slow


def desired_rate(track: Track, tick: Tick, parent: float = 1.0) -> float:
    """The pass-through this budget wants on top of `parent` (what is already applied to
    the same line items by another budget); may exceed 1 (it cannot keep up)."""
    remaining = tick.target - tick.spent
    if tick.target <= 0 or remaining <= 0:
        return 0.0
    want = min(plan(track, tick, tick.traffic_ahead) - tick.spent, remaining)
    if want <= 0:
        return 0.0
    if track.demand is None:
        return min(1.0, FIRST_RATE / parent) if parent > 0 else 1.0
    capacity = track.demand * parent * (tick.traffic_ahead - tick.traffic)
    return want / capacity if capacity > 0 else math.inf


def settle(track: Track, tick: Tick, desired: float, own: float, parent: float = 1.0) -> None:
    """Record the rate this budget got (`own`, on top of `parent`); re-anchor its plan when
    it wanted more than it got (anti-windup)."""
    if desired > own + SLACK:
        track.anchor_spent = tick.spent
        track.anchor_fraction = tick.fraction(tick.traffic)
    track.desired = desired if math.isfinite(desired) else 1e9
    track.rate = own
    track.previous, track.applied = track.applied, own * parent


def clamp(rate: float) -> float:
    return min(1.0, max(0.0, rate))


def step(track: Track, tick: Tick, parent: float = 1.0) -> float:
    """One tick for a budget that is alone on its line items: learn, decide, settle."""
    learn(track, tick)
    desired = desired_rate(track, tick, parent)
    own = clamp(desired)
    settle(track, tick, desired, own, parent)
    return own


def predicted_end_of_day(track: Track, tick: Tick, parent: float = 1.0) -> float | None:
    """The day's spend if the controller keeps to the plan: the target when the demand left
    in the day covers it, otherwise what is spent plus all that demand."""
    if track.demand is None:
        return None
    left = track.demand * parent * (1.0 - tick.traffic)
    return min(tick.target, tick.spent + left) if tick.target > tick.spent else tick.spent


# Dynamic-down bids: the bid drifts down while the budget is held well below full rate
# (`LOWER_BELOW`), back up while it wants clearly more than full rate (`RAISE_ABOVE`), and
# stays put in between. The band is wide on purpose: what a bid wins moves in steps as it
# crosses competitors' bids, and a narrow band would have bid and rate chase each other
# across a step. The drift is measured in traffic, not ticks: halving the bid takes
# `HALVING` of the day's traffic (about two and a half hours at an average hour's), however
# often the controller runs.
LOWER_BELOW = 0.3
RAISE_ABOVE = 1.2
HALVING = 0.1


def next_multiplier(multiplier: float, desired: float, lowest: float, elapsed: float) -> float:
    """The bid multiplier of a dynamic-down line item after a tick that saw `elapsed` of the
    day's traffic (docs/pacing.md): never above 1 (the booked bid), never below `lowest`
    (min bid / bid)."""
    step = 0.5 ** (max(0.0, elapsed) / HALVING)
    if desired < LOWER_BELOW:
        multiplier *= step
    elif desired > RAISE_ABOVE:
        multiplier /= step
    return min(1.0, max(lowest, multiplier))
