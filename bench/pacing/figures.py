"""The simulator's figures: spend against budget and schedule, stops, overspend; its
tables."""

import argparse
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from bench.pacing.book import SimCampaign
from bench.pacing.day import HOURS, NANOS, DayResult, Win, hour_volume


@dataclass
class Figures:
    spend: Decimal
    budget: Decimal
    # The largest (hour's spend - hour's schedule) / hour's schedule, signed, and the Poisson
    # noise of that hour (two standard deviations of its number of wins): what an open-loop
    # delivery would scatter by at this volume. A controller that corrects errors within the
    # hour does somewhat better; above 10 %, the 10 % bar says little about the controller.
    worst_hour: float | None
    hour_noise: float | None
    # The largest (spend so far - schedule so far) / schedule so far at an hour's end,
    # signed: how pacing is read in a report ("pacing at 104 %").
    worst_pacing: float | None
    stop_seconds: float | None  # exhaustion to the last served impression (wall)
    overspend: float

    @property
    def ratio(self) -> float:
        return float(self.spend / self.budget) if self.budget else 0.0


def figures(wins: list[Win], budget: Decimal, hard: Decimal, schedule: Any, mode: str) -> Figures:
    from campaigns.pacing.schedule import mode_fraction

    day_start = schedule.start.timestamp()
    hourly = [0] * HOURS
    counts = [0] * HOURS
    total = 0
    exhausted_at: float | None = None
    last = 0.0
    hard_nanos = int(hard * NANOS)
    for w in sorted(wins, key=lambda w: w.wall):
        hour = min(HOURS - 1, max(0, int((w.sim - day_start) // 3600)))
        hourly[hour] += w.cost
        counts[hour] += 1
        total += w.cost
        last = w.wall
        if exhausted_at is None and total >= hard_nanos:
            exhausted_at = w.wall
    b = int(budget * NANOS)
    worst_hour = noise = worst_pacing = None
    if mode != "asap" and b:
        fractions = [mode_fraction(mode, sum(schedule.shape[:h])) for h in range(HOURS + 1)]
        planned = [b * (fractions[h + 1] - fractions[h]) for h in range(HOURS)]
        deviations = [(hourly[h] - planned[h]) / planned[h] for h in range(HOURS)]
        h = max(range(HOURS), key=lambda h: abs(deviations[h]))
        worst_hour = deviations[h]
        noise = 2 / math.sqrt(counts[h]) if counts[h] else None
        cumulative, pacing = 0, []
        for h in range(HOURS):
            cumulative += hourly[h]
            pacing.append(cumulative / (b * fractions[h + 1]) - 1)
        worst_pacing = max(pacing, key=abs)
    spend = Decimal(total) / NANOS
    return Figures(
        spend=spend,
        budget=budget,
        worst_hour=worst_hour,
        hour_noise=noise,
        worst_pacing=worst_pacing,
        stop_seconds=(last - exhausted_at) if exhausted_at is not None else None,
        overspend=max(0.0, float((spend - hard) / hard)) if hard else 0.0,
    )


def pct(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "-"
    return f"{x * 100:+.1f} %" if signed else f"{x * 100:.1f} %"


def print_table(
    title: str, rows: list[tuple[str, str, Figures]], result: DayResult, args: argparse.Namespace
) -> None:
    offered, answered = sum(result.offered), sum(result.answered)
    print(f"\n{title}")
    print(
        f"  {answered:,} ad requests in {result.wall_seconds:.0f} s wall "
        f"({answered / max(1.0, result.wall_seconds):,.0f}/s; offered {offered:,}), "
        f"{result.filled:,} filled, {result.errors} errors"
    )
    if result.ticks:
        ms = ", ".join(f"{k} {v:.0f} ms" for k, v in result.controller_ms.items())
        print(f"  {result.ticks} controller ticks; each run of: {ms}")
    header = (
        f"  {'campaign':<20}{'mode':<12}{'budget':>9}{'spend':>10}{'of budget':>10}"
        f"{'worst hour':>12}{'(noise)':>9}{'worst pacing':>14}{'stop (s)':>10}{'overspend':>11}"
    )
    print(header)
    print("  " + "-" * (len(header) - 2))
    for label, mode, f in rows:
        stop = f"{f.stop_seconds:.3f}" if f.stop_seconds is not None else "-"
        noise = f"±{f.hour_noise * 100:.0f} %" if f.hour_noise is not None else "-"
        print(
            f"  {label:<20}{mode:<12}{f.budget:>9.2f}{f.spend:>10.2f}{pct(f.ratio):>10}"
            f"{pct(f.worst_hour, True):>12}{noise:>9}{pct(f.worst_pacing, True):>14}"
            f"{stop:>10}{pct(f.overspend):>11}"
        )


def truth_check(sims: list[SimCampaign], result: DayResult, day_start: datetime) -> str:
    """The rollups (what is billed) against the sim's own count of wins and Redis."""
    from django.db.models import Sum

    from campaigns.pacing.ledger import parse_counters
    from campaigns.snapshot import redis_client, redis_keys
    from reporting.models import HourlyRollup

    ids = [s.campaign_id for s in sims]
    rolled = HourlyRollup.objects.filter(
        campaign_id__in=ids, hour__gte=day_start, hour__lt=day_start + timedelta(days=1)
    ).aggregate(s=Sum("spend"))["s"] or Decimal(0)
    won = Decimal(sum(w.cost for s in sims for w in result.wins[s.campaign_id])) / NANOS
    client, keys = redis_client(), redis_keys()
    day = day_start.strftime("%Y%m%d")
    counted = sum(parse_counters(client.hgetall(keys.spend(day, i))).spend for i in ids)
    return (
        f"  truth: rollups bill {rolled:.4f}, the simulator saw {won:.4f} won, "
        f"Redis counts {Decimal(counted) / NANOS:.4f}"
    )


def print_hours(sims: list[SimCampaign], result: DayResult, schedules: dict[int, Any]) -> None:
    """Each hour's spend as a percentage of its scheduled spend."""
    from campaigns.pacing.schedule import mode_fraction

    print("  spend per hour, % of the hour's schedule (traffic: requests served, % of the curve):")
    print("  " + " " * 16 + "".join(f"{h:>5}" for h in range(HOURS)))
    curve = [hour_volume(h) for h in range(HOURS)]
    mean = sum(result.answered) / sum(curve)
    print(
        f"  {'traffic':<16}"
        + "".join(f"{result.answered[h] / (mean * curve[h]) * 100:>5.0f}" for h in range(HOURS))
    )
    for s in sims:
        schedule, mode = schedules[s.campaign_id], s.plan.mode
        if mode == "asap":
            continue
        start = schedule.start.timestamp()
        hourly = [0] * HOURS
        for w in result.wins[s.campaign_id]:
            hourly[min(HOURS - 1, max(0, int((w.sim - start) // 3600)))] += w.cost
        fractions = [mode_fraction(mode, sum(schedule.shape[:h])) for h in range(HOURS + 1)]
        b = float(s.budgets[result.name]) * NANOS
        cells = [hourly[h] / (b * (fractions[h + 1] - fractions[h])) * 100 for h in range(HOURS)]
        print(f"  {s.plan.label[:16]:<16}" + "".join(f"{c:>5.0f}" for c in cells))


def summarise(
    sims: list[SimCampaign], results: dict[str, DayResult], schedules: dict[int, Any]
) -> None:
    """The targets, for the campaigns with enough traffic (they spent their whole budget in
    the naive run): spend within 3 % of the budget, delivery within 10 % of the schedule
    (read hour by hour as pacing, spend so far against schedule so far; and each hour on its
    own, beside that hour's noise), stop within 2 s, overspend under 1 %."""
    if "naive" not in results:
        return
    print("\nTARGETS (campaigns with enough traffic: the naive run spent their whole budget)")
    for name in ("paced", "naive"):
        result = results[name]
        enough, within3, paced10, hours10, hours_noise = 0, 0, 0, 0, 0
        stops: list[float] = []
        over: list[float] = []
        worst_ratio = worst_pacing = worst_hour = 0.0
        for s in sims:
            schedule, mode = schedules[s.campaign_id], s.plan.mode
            naive_wins = results["naive"].wins[s.campaign_id]
            naive = figures(naive_wins, s.budgets["naive"], s.hard_budget["naive"], schedule, mode)
            f = figures(
                result.wins[s.campaign_id], s.budgets[name], s.hard_budget[name], schedule, mode
            )
            if f.stop_seconds is not None:
                stops.append(f.stop_seconds)
            over.append(f.overspend)
            if naive.ratio < 0.99:
                continue
            enough += 1
            worst_ratio = max(worst_ratio, abs(f.ratio - 1))
            within3 += abs(f.ratio - 1) <= 0.03
            if f.worst_pacing is None or f.worst_hour is None:
                paced10 += 1  # ASAP: no schedule to keep
                hours10 += 1
                hours_noise += 1
                continue
            paced10 += abs(f.worst_pacing) <= 0.10
            hours10 += abs(f.worst_hour) <= 0.10
            hours_noise += abs(f.worst_hour) <= 0.10 + (f.hour_noise or 0)
            worst_pacing = max(worst_pacing, abs(f.worst_pacing))
            worst_hour = max(worst_hour, abs(f.worst_hour))
        print(
            f"  {name}: spend within 3 %: {within3}/{enough} (worst {worst_ratio * 100:.1f} %); "
            f"pacing within 10 % at every hour: {paced10}/{enough} "
            f"(worst {worst_pacing * 100:.1f} %); every hour within 10 %: {hours10}/{enough}, "
            f"within 10 % + its noise: {hours_noise}/{enough} (worst {worst_hour * 100:.1f} %);\n"
            f"  {' ' * len(name)}  stop after exhaustion: worst {max(stops, default=0):.3f} s "
            f"({len(stops)} budgets reached); overspend: worst {max(over) * 100:.2f} %"
        )
