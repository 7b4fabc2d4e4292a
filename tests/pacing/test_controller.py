"""The controller alone, on a simulated line item: converges without oscillating, keeps its
rate in [0, 1], forgives what it cannot spend instead of winding up, front-loads and learns
the day's traffic shape."""

import itertools
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from campaigns.pacing import controller as ctl
from campaigns.pacing.schedule import DaySchedule, mode_fraction, normalise

DAY = datetime(2026, 3, 2, tzinfo=UTC)
TICK = timedelta(minutes=2)
# A news site's day: quiet at night, a morning ramp, a noon peak and an evening plateau.
DIURNAL = [2, 1.5, 1, 1, 1.2, 2, 4, 6, 8, 9, 9.5, 10, 10, 9.5, 9, 8.5, 8, 8, 8.5, 8, 7, 5, 4, 3]
SHAPE = normalise([x * 1000 for x in DIURNAL])


@dataclass
class Day:
    """A line item on a day: what it spends at pass-through 1 is `demand` per day of
    traffic, arriving with the traffic shape; serving applies a new rate halfway through the
    interval it was written for (it re-reads rates once a second)."""

    budget: float
    demand: float
    mode: str = "even"
    noise: float = 0.0
    outage: tuple[int, int] | None = None  # hours with no traffic at all
    rates: list[float] = field(default_factory=list)
    hourly: list[float] = field(default_factory=lambda: [0.0] * 24)
    spent: float = 0.0

    def run(self, seed: int = 1, traffic: Callable[[float], float] | None = None) -> ctl.Track:
        rng = random.Random(seed)
        sched = DaySchedule("UTC", DAY, DAY + timedelta(days=1), SHAPE, self.mode)
        track = ctl.Track()
        previous = 1.0  # nothing written yet: everything passes
        now = DAY
        while now < DAY + timedelta(days=1):
            tick = ctl.Tick(
                day="20260302",
                at=now.timestamp(),
                spent=self.spent,
                target=self.budget,
                traffic=sched.traffic(now),
                traffic_ahead=sched.traffic(now + ctl.CATCH_UP),
                fraction=lambda x: mode_fraction(self.mode, x),
            )
            rate = ctl.step(track, tick)
            self.rates.append(rate)
            applied = (previous + rate) / 2
            previous = rate
            # what happens until the next tick, at the rate written one tick ago
            later = now + TICK
            share = sched.traffic(later) - sched.traffic(now)
            if traffic is not None:
                share = traffic(share)
            if self.outage and self.outage[0] <= now.hour < self.outage[1]:
                share = 0.0
            gained = self.demand * share * applied
            if self.noise:
                gained *= max(0.0, rng.gauss(1.0, self.noise))
            gained = min(gained, max(0.0, self.budget - self.spent))
            self.spent += gained
            self.hourly[now.hour] += gained
            now = later
        return track

    def schedule_hour(self, hour: int) -> float:
        start = sum(SHAPE[:hour])
        end = start + SHAPE[hour]
        return self.budget * (mode_fraction(self.mode, end) - mode_fraction(self.mode, start))


def test_spend_converges_to_the_budget_along_the_traffic_shape() -> None:
    day = Day(budget=100.0, demand=400.0)  # four times more traffic than the budget needs
    day.run()
    assert abs(day.spent - 100.0) < 1.0
    # after the first hour, every hour within 5 % of its share of the schedule
    worst = max(abs(day.hourly[h] / day.schedule_hour(h) - 1) for h in range(1, 24))
    assert worst < 0.05


def test_the_rate_settles_without_oscillating_and_stays_in_bounds() -> None:
    day = Day(budget=100.0, demand=400.0)
    day.run()
    assert all(0.0 <= r <= 1.0 for r in day.rates)
    settled = day.rates[60:]  # after two hours
    assert max(settled) - min(settled) < 0.02  # the right rate is constant: 1/4
    assert abs(settled[-100] - 0.25) < 0.01
    # no ringing: once settled, successive changes do not keep flipping sign
    moves = [b - a for a, b in itertools.pairwise(settled) if abs(b - a) > 1e-4]
    flips = sum(1 for a, b in itertools.pairwise(moves) if a * b < 0)
    assert flips <= 2


def test_noisy_demand_still_lands_within_two_percent() -> None:
    for seed in range(5):
        day = Day(budget=100.0, demand=300.0, noise=0.3)
        day.run(seed)
        assert abs(day.spent - 100.0) < 2.0, seed
        assert all(0.0 <= r <= 1.0 for r in day.rates)


def test_a_line_item_that_cannot_spend_does_not_wind_up() -> None:
    # too little traffic: it can never reach the budget; the rate stays at 1, bounded
    starved = Day(budget=100.0, demand=60.0)
    starved.run()
    assert starved.rates[-1] == 1.0
    assert abs(starved.spent - 60.0) < 0.5
    # no traffic from 06:00 to 12:00, then plenty: the six lost hours are spread over the
    # rest of the day, not burst into the first hour back
    outage = Day(budget=100.0, demand=400.0, outage=(6, 12))
    outage.run()
    after = [outage.hourly[h] / outage.schedule_hour(h) for h in range(12, 24)]
    # what is left is spread evenly over the rest of the day: the first hour back is no
    # burst above the others (winding up would spend the six hours' 26 % in it)
    assert after[0] < statistics.median(after[1:]) * 1.1
    assert max(after[1:]) < min(after[1:]) * 1.05
    assert abs(outage.spent - 100.0) < 1.5


def test_more_traffic_than_the_history_said_is_absorbed() -> None:
    # twice the expected traffic all afternoon: the rate halves, spend stays on schedule
    day = Day(budget=100.0, demand=400.0)
    day.run(traffic=lambda share: share * 2 if share > 0.004 else share)
    assert abs(day.spent - 100.0) < 1.0


def test_frontloaded_spends_two_thirds_by_the_traffic_midpoint() -> None:
    day = Day(budget=100.0, demand=400.0, mode="frontloaded")
    day.run()
    noon = sum(day.hourly[:12])
    midpoint = sum(SHAPE[:12])
    assert abs(noon - 100.0 * mode_fraction("frontloaded", midpoint)) < 2.0
    assert abs(day.spent - 100.0) < 1.0


def test_dynamic_bids_only_go_down_and_never_below_the_floor() -> None:
    multiplier = 1.0
    seen = []
    # well ahead for 15 % of the day's traffic, then behind, then about on schedule
    for desired in [0.3] * 30 + [2.0] * 40 + [0.8] * 10:
        multiplier = ctl.next_multiplier(multiplier, desired, lowest=0.6, elapsed=0.005)
        seen.append(multiplier)
    assert seen[4] == pytest.approx(0.5 ** (5 * 0.005 / ctl.HALVING))  # halves in 5 %
    assert min(seen) == 0.6  # never below the minimum bid
    assert max(seen) == 1.0  # never above the booked bid
    assert seen[-10:] == [1.0] * 10  # about on schedule: the bid stays where it is
