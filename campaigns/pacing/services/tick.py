"""The pacing controller's tick: each live campaign's pass-through rates, dynamic bid
multipliers and the day's caps, written to Redis for serving."""

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings

from campaigns.models import BidStrategy, Campaign, GoalType, PacingMode, PriorityTier
from campaigns.pacing import controller as ctl
from campaigns.pacing.ledger import Counters, Ledger, to_money, to_nanos
from campaigns.pacing.schedule import DaySchedule, mode_fraction
from campaigns.pacing.services.reconcile import reconcile_spend
from campaigns.pacing.services.targets import (
    days_left,
    goal_target,
    line_item_target,
    live_campaigns,
    schedule_for,
    spend_target,
)
from campaigns.snapshot import redis_client, redis_keys
from reporting.lease import Lease

log = logging.getLogger(__name__)

# Rates this close to 1 are not written: a missing rate passes everything.
FULL = 0.9999


@dataclass
class PacingRun:
    campaigns: int = 0
    throttled: int = 0  # line items with a pass-through below 1
    lowered_bids: int = 0
    reconciled: int = 0


@dataclass
class _Tick:
    campaign: Campaign
    schedule: DaySchedule
    today: Counters
    life: Counters
    days: int | None


def run_pacing(now: datetime) -> PacingRun:
    """One controller tick for every live campaign: rates, bid multipliers, the day's caps."""
    client, keys = redis_client(), redis_keys()
    lease = Lease(client, keys.pacing_lock, settings.PACING_LOCK_SECONDS)
    if not lease.acquire():
        return PacingRun()  # another worker (another scheduler's tick) is on it
    try:
        return _run_pacing(Ledger(client, keys), now)
    finally:
        if lease.lost:
            log.warning("the pacing lease expired before the tick finished")
        lease.release()


def _read_day(led: Ledger, campaigns: list[Campaign], now: datetime) -> dict[int, _Tick]:
    shapes: dict[Any, tuple[float, ...]] = {}
    schedules = {c.pk: schedule_for(c, now, shapes) for c in campaigns}
    counters = led.read(
        [(c.pk, schedules[c.pk].day) for c in campaigns] + [(c.pk, "life") for c in campaigns]
    )
    return {
        c.pk: _Tick(
            campaign=c,
            schedule=schedules[c.pk],
            today=counters[(c.pk, schedules[c.pk].day)],
            life=counters[(c.pk, "life")],
            days=days_left(c, schedules[c.pk]),
        )
        for c in campaigns
    }


def _run_pacing(led: Ledger, now: datetime) -> PacingRun:
    campaigns = live_campaigns(now)
    ticks = _read_day(led, campaigns, now)
    # A day hash the reconciliation has not seen: a new day, or Redis lost its counters.
    # Repair from the rollups before steering on them.
    unseen = [t.campaign for t in ticks.values() if t.today.reconciled_at is None]
    result = PacingRun(campaigns=len(campaigns))
    if unseen:
        # The reconciliation task may hold its lease: wait for it briefly (it repairs these).
        result.reconciled = reconcile_spend(now, unseen, led, wait=1.0).campaigns
        ticks.update(_read_day(led, unseen, now))
    previous = led.read_states()
    _, old_multipliers = led.read_rates()
    states: dict[str, Any] = {}
    rates: dict[int, float] = {}
    multipliers: dict[int, float] = {}
    pipe = led.client.pipeline(transaction=False)
    at = now.timestamp()
    for tick in ticks.values():
        _step_campaign(tick, previous, states, rates, multipliers, old_multipliers, now, at)
        _settle(led, tick, pipe)
    settled = pipe.execute()
    # When each campaign ran out of budget today, to the tick (`/metrics`, alerts).
    led.mark_exhausted(
        (t.campaign.pk, t.schedule.day, at if spent else None)
        for t, reply in zip(ticks.values(), settled, strict=True)
        if (spent := bool(reply and int(reply[0]))) != (t.today.exhausted_at is not None)
    )
    led.write(states=states, rates=rates, multipliers=multipliers)
    result.throttled = len(rates)
    result.lowered_bids = len(multipliers)
    return result


def _step_campaign(
    tick: _Tick,
    previous: dict[str, Any],
    states: dict[str, Any],
    rates: dict[int, float],
    multipliers: dict[int, float],
    old_multipliers: dict[int, float],
    now: datetime,
    at: float,
) -> None:
    c, sched, today, life = tick.campaign, tick.schedule, tick.today, tick.life
    mode = c.pacing_mode
    traffic = sched.traffic(now)
    ahead = sched.traffic(now + ctl.CATCH_UP)

    def frac(x: float) -> float:
        return mode_fraction(mode, x)

    spent_before = to_money(life.spend - today.spend)
    target = spend_target(c, spent_before, tick.days)
    spend = ctl.Tick(
        sched.day, at, today.spend, to_nanos(target), traffic, ahead, frac,
        events=today.impressions,
    )  # fmt: skip
    budgets = [(f"c{c.pk}", spend)]
    goal = goal_target(
        c,
        (life.impressions - today.impressions)
        if c.goal_type == GoalType.IMPRESSIONS
        else (life.clicks - today.clicks),
        tick.days,
    )
    if goal is not None and tick.days is not None:
        done = today.impressions if c.goal_type == GoalType.IMPRESSIONS else today.clicks
        t = ctl.Tick(sched.day, at, done, goal, traffic, ahead, frac, events=done)
        budgets.append((f"g{c.pk}", t))
    tracks = [(name, ctl.Track.from_json(previous.get(name)), t) for name, t in budgets]
    first = tracks[0][1]
    elapsed = traffic - (first.traffic if first.day == sched.day else 0.0)
    wanted = []
    for _, track, t in tracks:
        ctl.learn(track, t)
        wanted.append(ctl.desired_rate(track, t))
    desired = min(wanted)
    rate = 1.0 if mode == PacingMode.ASAP else ctl.clamp(desired)
    for (name, track, t), want in zip(tracks, wanted, strict=True):
        ctl.settle(track, t, want, rate)
        states[name] = track.to_json()
    spend_track, spend_tick = tracks[0][1], tracks[0][2]
    states[f"v{c.pk}"] = {
        "day": sched.day,
        "at": at,
        "target": spend_tick.target,
        "spent": today.spend,
        "schedule": spend_tick.target * frac(traffic),
        "plan": ctl.plan(spend_track, spend_tick, traffic),
        "rate": rate,
        "desired": desired if desired != float("inf") else None,
        "predicted": ctl.predicted_end_of_day(spend_track, spend_tick),
        "goal": goal,
    }
    for li in c.line_items.all():
        own, li_desired = 1.0, desired
        li_target = line_item_target(
            li, to_money(life.line_spend.get(li.pk, 0) - today.line_spend.get(li.pk, 0)),
            tick.days, mode,
        )  # fmt: skip
        if li_target is not None:
            name = f"l{li.pk}"
            track = ctl.Track.from_json(previous.get(name))
            t = ctl.Tick(
                sched.day, at, today.line_spend.get(li.pk, 0), to_nanos(li_target),
                traffic, ahead, frac, events=today.line_impressions.get(li.pk, 0),
            )  # fmt: skip
            ctl.learn(track, t)
            wanted_here = ctl.desired_rate(track, t, parent=rate)
            own = 1.0 if mode == PacingMode.ASAP else ctl.clamp(wanted_here)
            ctl.settle(track, t, wanted_here, own, parent=rate)
            states[name] = track.to_json()
            li_desired = min(desired, wanted_here * rate)
        if rate * own < FULL:
            rates[li.pk] = rate * own
        if (
            li.bid_strategy == BidStrategy.DYNAMIC_DOWN
            and li.min_bid is not None
            and c.priority_tier == PriorityTier.PRICE
            and mode != PacingMode.ASAP
            and spend_track.demand is not None  # nothing to go on before the first evidence
        ):
            m = ctl.next_multiplier(
                old_multipliers.get(li.pk, 1.0), li_desired, float(li.min_bid / li.bid), elapsed
            )
            if m < FULL:
                multipliers[li.pk] = m


def _settle(led: Ledger, tick: _Tick, pipe: Any) -> None:
    """Write the day's caps and settle the exhausted marks against today's budgets."""
    c = tick.campaign
    spent_before = to_money(tick.life.spend - tick.today.spend)
    cap = to_nanos(spend_target(c, spent_before, tick.days))
    goal = goal_target(
        c,
        (tick.life.impressions - tick.today.impressions)
        if c.goal_type == GoalType.IMPRESSIONS
        else (tick.life.clicks - tick.today.clicks),
        tick.days,
    )
    goal_cap = str(max(goal, 0)) if goal is not None else ""
    icap = goal_cap if c.goal_type == GoalType.IMPRESSIONS else ""
    kcap = goal_cap if c.goal_type == GoalType.CLICKS else ""
    line_items = []
    for li in c.line_items.all():
        li_life = to_money(tick.life.line_spend.get(li.pk, 0) - tick.today.line_spend.get(li.pk, 0))
        li_target = line_item_target(li, li_life, tick.days, c.pacing_mode)
        line_items.append((li.pk, to_nanos(li_target), to_nanos(li.lifetime_budget)))
    led.settle(
        c.pk,
        tick.schedule.day,
        caps=(str(cap), icap, kcap),
        budgets=(to_nanos(c.daily_budget), to_nanos(c.lifetime_budget)),
        line_items=line_items,
        pipe=pipe,
    )
