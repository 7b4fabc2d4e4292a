"""Pacing services: the controller's tick, the reconciliation of Redis with the rollups, and
each campaign's pacing state (API, admin, reports). Every function takes `now`: the Celery
tasks pass the wall clock, the simulator its compressed one.
"""

import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Prefetch, Sum

from campaigns.models import (
    BidStrategy,
    Campaign,
    GoalType,
    LineItem,
    LineItemStatus,
    PacingMode,
    PriorityTier,
)
from campaigns.pacing import controller as ctl
from campaigns.pacing.ledger import Counters, Ledger, to_money, to_nanos
from campaigns.pacing.schedule import (
    DaySchedule,
    cached_shape,
    day_bounds,
    day_schedule,
    mode_fraction,
)
from campaigns.snapshot import redis_client, redis_keys
from reporting.lease import Lease, LeaseLost
from reporting.models import HourlyRollup
from serving.keys import local_day

log = logging.getLogger(__name__)

# Rates this close to 1 are not written: a missing rate passes everything.
FULL = 0.9999


def live_campaigns(now: datetime) -> list[Campaign]:
    line_items = LineItem.objects.filter(status=LineItemStatus.ACTIVE).prefetch_related(
        "placements"
    )
    return list(
        Campaign.objects.live(now)
        .select_related("advertiser")
        .prefetch_related(Prefetch("line_items", queryset=line_items.order_by("id")))
        .order_by("id")
    )


def ledger() -> Ledger:
    return Ledger(redis_client(), redis_keys())


# -- the day's targets --------------------------------------------------------------------


def days_left(campaign: Campaign, schedule: DaySchedule) -> int | None:
    """Local days of the flight from today on, today included; None without an end."""
    if campaign.end_at is None:
        return None
    last = (campaign.end_at - timedelta(microseconds=1)).astimezone(ZoneInfo(schedule.zone))
    return max(1, (last.date() - schedule.start.date()).days + 1)


def _spread(remaining: Decimal, days: int | None, mode: str) -> Decimal:
    """Today's share of what is left of a flight total: all of it for ASAP or without an end
    date, an equal share of the days left otherwise."""
    remaining = max(Decimal(0), remaining)
    if days is None or mode == PacingMode.ASAP:
        return remaining
    return remaining / days


def spend_target(campaign: Campaign, spent_before_today: Decimal, days: int | None) -> Decimal:
    """Today's budget: the daily budget, within the lifetime budget and a spend goal."""
    target = campaign.daily_budget
    totals = [campaign.lifetime_budget]
    if campaign.goal_type == GoalType.SPEND:
        totals.append(campaign.goal_target)
    for total in totals:
        if total is not None:
            target = min(target, _spread(total - spent_before_today, days, campaign.pacing_mode))
    return max(Decimal(0), target)


def goal_target(campaign: Campaign, done_before_today: int, days: int | None) -> int | None:
    """Today's impressions or clicks for a goal campaign (None: no count goal)."""
    if campaign.goal_type not in (GoalType.IMPRESSIONS, GoalType.CLICKS):
        return None
    if campaign.goal_target is None:
        return None
    left = Decimal(campaign.goal_target) - done_before_today
    return int(_spread(left, days, campaign.pacing_mode).to_integral_value())


def line_item_target(
    li: LineItem, spent_before_today: Decimal, days: int | None, mode: str
) -> Decimal | None:
    """Today's budget of a line item with budgets of its own (None: it has none)."""
    target = li.daily_budget
    if li.lifetime_budget is not None:
        share = _spread(li.lifetime_budget - spent_before_today, days, mode)
        target = share if target is None else min(target, share)
    return target


def _shape_placements(campaign: Campaign) -> list[int]:
    """The placements a campaign can appear on, when every line item names its own."""
    placements: set[int] = set()
    for li in campaign.line_items.all():
        ids = [p.pk for p in li.placements.all()]
        if not ids:
            return []
        placements.update(ids)
    return sorted(placements)


def schedule_for(
    campaign: Campaign, now: datetime, shapes: dict[Any, tuple[float, ...]] | None = None
) -> DaySchedule:
    """The campaign's day around `now`; `shapes` remembers traffic shapes within one tick."""
    zone = campaign.advertiser.time_zone
    start, _ = day_bounds(now, zone)
    placements = tuple(_shape_placements(campaign))
    memo = {} if shapes is None else shapes
    key = (zone, start, placements)
    if key not in memo:
        memo[key] = cached_shape(redis_client(), redis_keys(), zone, start, placements)
    return day_schedule(now, zone, campaign.pacing_mode, memo[key])


# -- the controller's tick ------------------------------------------------------------------


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


# -- reconciliation -----------------------------------------------------------------------


@dataclass
class ReconcileResult:
    campaigns: int = 0
    repaired: int = 0  # counters raised to the rollups
    released: int = 0  # pending wins released (never rendered)
    skipped: bool = False  # another reconciliation held the lease


@dataclass
class _Truth:
    spend: int = 0
    impressions: int = 0
    clicks: int = 0


# Rollups of an hour can still arrive after it ends (ingestion lags seconds, a backlog more):
# hours this long before the start of today are settled and summed once a day; the rest are
# read at every reconciliation.
SETTLED = timedelta(hours=2)


def _truth(
    campaigns: list[Campaign], now: datetime
) -> tuple[dict[int, dict[int, _Truth]], dict[int, dict[int, _Truth]]]:
    """(today, lifetime) per campaign and line item, from the rollups. The recent rows (from
    `SETTLED` before the start of today on; the hour is the rollups' leading index column)
    are read each time; what came before them is summed once a day per campaign and kept in
    Redis."""
    today: dict[int, dict[int, _Truth]] = defaultdict(lambda: defaultdict(_Truth))
    life: dict[int, dict[int, _Truth]] = defaultdict(lambda: defaultdict(_Truth))
    bounds = {c.pk: day_bounds(now, c.advertiser.time_zone) for c in campaigns}
    for campaign_id, base in _settled(bounds).items():
        for li, (s, i, k) in base.items():
            t = life[campaign_id][li]
            t.spend, t.impressions, t.clicks = s, i, k
    earliest = min(start for start, _ in bounds.values()) - SETTLED
    rows = (
        HourlyRollup.objects.filter(campaign_id__in=list(bounds), hour__gte=earliest)
        .values("campaign_id", "line_item_id", "hour")
        .annotate(s=Sum("spend"), i=Sum("impressions"), k=Sum("clicks"))
        .order_by()
    )
    for row in rows:
        campaign_id, li = row["campaign_id"], row["line_item_id"]
        start, end = bounds[campaign_id]
        if row["hour"] < start - SETTLED:
            continue  # in the settled sum already
        spend, impressions, clicks = to_nanos(row["s"]), row["i"] or 0, row["k"] or 0
        tallies = [life[campaign_id][li]]
        if start <= row["hour"] < end:
            tallies.append(today[campaign_id][li])
        for t in tallies:
            t.spend += spend
            t.impressions += impressions
            t.clicks += clicks
    return today, life


def _settled(
    bounds: dict[int, tuple[datetime, datetime]],
) -> dict[int, dict[int, tuple[int, int, int]]]:
    """Each campaign's rollups of the hours before `SETTLED` before the start of its local
    today, per line item: (spend, impressions, clicks), summed once a day and kept in Redis
    (two days)."""
    client, keys = redis_client(), redis_keys()
    names = {c: keys.lifetime_base(c, start.strftime("%Y%m%d")) for c, (start, _) in bounds.items()}
    cached = dict(zip(names, client.mget(list(names.values())), strict=True))
    out: dict[int, dict[int, tuple[int, int, int]]] = {}
    missing: dict[datetime, list[int]] = defaultdict(list)
    for campaign_id, raw in cached.items():
        if raw is None:
            missing[bounds[campaign_id][0] - SETTLED].append(campaign_id)
        else:
            out[campaign_id] = {int(li): tuple(v) for li, v in json.loads(raw).items()}
    for before, ids in missing.items():
        found: dict[int, dict[int, tuple[int, int, int]]] = {c: {} for c in ids}
        for row in (
            HourlyRollup.objects.filter(campaign_id__in=ids, hour__lt=before)
            .values("campaign_id", "line_item_id")
            .annotate(s=Sum("spend"), i=Sum("impressions"), k=Sum("clicks"))
            .order_by()
        ):
            found[row["campaign_id"]][row["line_item_id"]] = (
                to_nanos(row["s"]), row["i"] or 0, row["k"] or 0,
            )  # fmt: skip
        pipe = client.pipeline(transaction=False)
        for campaign_id, base in found.items():
            pipe.set(names[campaign_id], json.dumps(base), ex=2 * 86400)
        pipe.execute()
        out.update(found)
    return out


def reconcile_spend(
    now: datetime,
    campaigns: list[Campaign] | None = None,
    led: Ledger | None = None,
    wait: float = 0,
) -> ReconcileResult:
    """Bring the Redis counters up to the rollups (the truth) and release wins that were
    never rendered; safe to run at any time, from any worker: one at a time under a lease
    (waiting up to `wait` seconds for it), since two would raise a counter by the same
    shortfall twice."""
    led = led or ledger()
    lease = Lease(led.client, led.keys.reconcile_lock, settings.PACING_LOCK_SECONDS)
    if not lease.acquire(wait):
        return ReconcileResult(skipped=True)
    try:
        return _reconcile(now, campaigns, led, lease)
    except LeaseLost:
        log.warning("reconciliation stopped: its lease expired; the next run carries on")
        return ReconcileResult(skipped=True)
    finally:
        lease.release()


def _reconcile(
    now: datetime, campaigns: list[Campaign] | None, led: Ledger, lease: Lease
) -> ReconcileResult:
    campaigns = live_campaigns(now) if campaigns is None else campaigns
    result = ReconcileResult(campaigns=len(campaigns))
    if not campaigns:
        return result
    # The truth first, then Redis: whatever the rollups hold was in Redis before this read,
    # so a repair never counts an impression twice.
    truth_today, truth_life = _truth(campaigns, now)
    days = {}
    for c in campaigns:
        zone = c.advertiser.time_zone
        start, _ = day_bounds(now, zone)
        days[c.pk] = (start.strftime("%Y%m%d"), local_day(start.timestamp() - 1, zone))
    counters = led.read(
        [(c.pk, d) for c in campaigns for d in days[c.pk]] + [(c.pk, "life") for c in campaigns]
    )
    # A win's token is not billable past its lifetime: its pending charge is released then.
    stale_minute = int((time.time() - settings.SERVING_TOKEN_TTL_SECONDS - 60) // 60)
    drift: dict[int, int] = {}
    repaired: dict[str, int] = defaultdict(int)
    for c in campaigns:
        lease.check()  # a holder stalled past its lease must not repair what another did
        today_day, yesterday_day = days[c.pk]
        today, yesterday = counters[(c.pk, today_day)], counters[(c.pk, yesterday_day)]
        life = counters[(c.pk, "life")]
        for day, hashed in ((today_day, today), (yesterday_day, yesterday)):
            for li, minute in list(hashed.pending):
                if minute < stale_minute:
                    released = led.release(c.pk, day, li, minute)
                    del hashed.pending[(li, minute)]
                    hashed.spend -= released
                    hashed.line_spend[li] = hashed.line_spend.get(li, 0) - released
                    life.spend -= released
                    life.line_spend[li] = life.line_spend.get(li, 0) - released
                    result.released += released
        # Rendered spend in Redis less the rollups': above 0, impressions not rolled up yet;
        # below, counts Redis lost (repaired now).
        truth = truth_today.get(c.pk, {})
        drift[c.pk] = today.spend - today.pending_total - sum(t.spend for t in truth.values())
        fixed = _repair(led, c.pk, today_day, today, truth, 0)
        repaired[c.currency] += fixed
        result.repaired += fixed
        pending = today.pending_total + yesterday.pending_total
        result.repaired += _repair(led, c.pk, "life", life, truth_life.get(c.pk, {}), pending)
        led.mark_reconciled(c.pk, today_day, now.timestamp())
        led.settle(
            c.pk,
            today_day,
            budgets=(to_nanos(c.daily_budget), to_nanos(c.lifetime_budget)),
            line_items=[
                (li.pk, to_nanos(li.daily_budget), to_nanos(li.lifetime_budget))
                for li in c.line_items.all()
            ],
        )
    led.record_reconciliation(drift, repaired, now.timestamp())
    return result


def _repair(
    led: Ledger,
    campaign_id: int,
    day: str,
    have: Counters,
    truth: dict[int, _Truth],
    pending: int,
) -> int:
    """Raise counters below the truth. Counters above it are wins not yet rendered or
    impressions not yet rolled up: left alone."""
    repaired = 0
    total = _Truth(
        spend=sum(t.spend for t in truth.values()),
        impressions=sum(t.impressions for t in truth.values()),
        clicks=sum(t.clicks for t in truth.values()),
    )
    checks = [
        ("s", have.spend - (have.pending_total if day != "life" else pending), total.spend),
        ("i", have.impressions, total.impressions),
        ("k", have.clicks, total.clicks),
    ]
    for li, t in truth.items():
        li_pending = have.line_pending(li) if day != "life" else 0
        checks += [
            (f"s:{li}", have.line_spend.get(li, 0) - li_pending, t.spend),
            (f"i:{li}", have.line_impressions.get(li, 0), t.impressions),
            (f"k:{li}", have.line_clicks.get(li, 0), t.clicks),
        ]
    for name, counted, true in checks:
        if counted < true:
            led.add(campaign_id, day, name, true - counted)
            if name == "s":
                repaired += true - counted
    return repaired


# -- what ad ops and advertisers see -----------------------------------------------------------


def campaign_pacing(campaign: Campaign, now: datetime) -> dict[str, Any]:
    """A campaign's pacing state now: spend today against its schedule, the controller's
    pass-through rate and its prediction for the end of the day, per line item too."""
    led = ledger()
    sched = schedule_for(campaign, now)
    counters = led.read([(campaign.pk, sched.day), (campaign.pk, "life")])
    today, life = counters[(campaign.pk, sched.day)], counters[(campaign.pk, "life")]
    line_item_ids = [li.pk for li in campaign.line_items.all()]
    view = led.read_states([f"v{campaign.pk}"]).get(f"v{campaign.pk}") or {}
    rates, multipliers = led.read_rates(line_item_ids)
    exhausted = led.exhausted(sched.day)
    fresh = view.get("day") == sched.day
    days = days_left(campaign, sched)
    target = spend_target(campaign, to_money(life.spend - today.spend), days)
    fraction = sched.fraction(now)
    schedule_now = target * Decimal(repr(fraction))
    spend = to_money(today.spend)
    predicted = view.get("predicted") if fresh else None
    line_items = []
    for li in campaign.line_items.all():
        line_items.append(
            {
                "id": li.pk,
                "name": li.name,
                "status": li.status,
                "spend_today": _money(to_money(today.line_spend.get(li.pk, 0))),
                "pending_spend_today": _money(to_money(today.line_pending(li.pk))),
                "wins_today": today.line_impressions.get(li.pk, 0),
                # The old name of wins_today, kept so existing integrations keep working.
                "impressions_today": today.line_impressions.get(li.pk, 0),
                "daily_budget": _money(li.daily_budget),
                "pass_through": round(rates.get(li.pk, 1.0), 4),
                "bid_strategy": li.bid_strategy,
                "bid_multiplier": round(multipliers.get(li.pk, 1.0), 4),
                "exhausted": f"li:{li.pk}" in exhausted,
            }
        )
    return {
        "campaign": campaign.pk,
        "day": sched.start.date().isoformat(),
        "time_zone": sched.zone,
        "pacing_mode": campaign.pacing_mode,
        "currency": campaign.currency,
        "daily_budget": _money(campaign.daily_budget),
        "budget_today": _money(target),
        "lifetime_budget": _money(campaign.lifetime_budget),
        "lifetime_spend": _money(to_money(life.spend)),
        "spend_today": _money(spend),
        # Wins charged but not rendered yet: part of spend_today, not (yet) billed.
        "pending_spend_today": _money(to_money(today.pending_total)),
        "wins_today": today.impressions,
        "impressions_today": today.impressions,  # the old name of wins_today
        "clicks_today": today.clicks,
        "schedule_now": _money(schedule_now.quantize(Decimal("0.0001"))),
        "schedule_fraction": round(fraction, 4),
        "pacing_error": round(float(spend / schedule_now) - 1, 4) if schedule_now else None,
        "pass_through": round(view["rate"], 4) if fresh else 1.0,
        "predicted_end_of_day_spend": (
            _money(to_money(predicted)) if predicted is not None else None
        ),
        "exhausted": str(campaign.pk) in exhausted,
        "goal_type": campaign.goal_type,
        "goal_target": _money(campaign.goal_target),
        "updated_at": (
            datetime.fromtimestamp(view["at"], ZoneInfo(sched.zone)).isoformat() if fresh else None
        ),
        "line_items": line_items,
    }


def _money(amount: Decimal | None) -> str | None:
    return None if amount is None else f"{amount.normalize():f}"


@dataclass(frozen=True)
class ChartPoint:
    hour: int
    spend: Decimal
    schedule: Decimal


def spend_against_schedule(campaign: Campaign, now: datetime) -> dict[str, Any]:
    """Today's cumulative spend per local hour (the rollups, then Redis for the hour under
    way) against the schedule's cumulative spend: the data of the report's chart."""
    led = ledger()
    sched = schedule_for(campaign, now)
    counters = led.read([(campaign.pk, sched.day), (campaign.pk, "life")])
    today, life = counters[(campaign.pk, sched.day)], counters[(campaign.pk, "life")]
    target = spend_target(campaign, to_money(life.spend - today.spend), days_left(campaign, sched))
    hourly: dict[int, Decimal] = defaultdict(Decimal)
    rows = (
        HourlyRollup.objects.filter(
            campaign_id=campaign.pk, hour__gte=sched.start, hour__lt=sched.end
        )
        .values("hour")
        .annotate(s=Sum("spend"))
        .order_by()
    )
    tz = ZoneInfo(sched.zone)
    for row in rows:
        hourly[row["hour"].astimezone(tz).hour] += row["s"] or Decimal(0)
    elapsed = min(24, int((now - sched.start).total_seconds() // 3600) + 1)
    points, spent = [], Decimal(0)
    for hour in range(24):
        spent += hourly.get(hour, Decimal(0))
        end = sched.hour_start(hour + 1)
        points.append(ChartPoint(hour + 1, spent, target * Decimal(repr(sched.fraction(end)))))
    return {
        "schedule": sched,
        "target": target,
        "points": points,
        "elapsed_hours": elapsed,
        "live_spend": to_money(today.spend),
        "live_schedule": target * Decimal(repr(sched.fraction(now))),
    }
