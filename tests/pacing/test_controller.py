"""The controller alone, on a simulated line item: converges without oscillating, keeps its
rate in [0, 1], forgives what it cannot spend instead of winding up, front-loads and learns
the day's traffic shape."""

import itertools
import math
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


def poisson(rng: random.Random, mean: float) -> int:
    if mean > 50:
        return max(0, round(rng.gauss(mean, mean**0.5)))
    n, p, limit = 0, 1.0, math.exp(-mean)
    while True:
        p *= rng.random()
        if p <= limit:
            return n
        n += 1


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
    price: float | None = None  # spend per win: the controller is told the wins (Poisson)
    shift: tuple[int, float] | None = None  # from this hour on, the demand times this
    rates: list[float] = field(default_factory=list)
    hourly: list[float] = field(default_factory=lambda: [0.0] * 24)
    spent: float = 0.0

    def run(self, seed: int = 1, traffic: Callable[[float], float] | None = None) -> ctl.Track:
        rng = random.Random(seed)
        sched = DaySchedule("UTC", DAY, DAY + timedelta(days=1), SHAPE, self.mode)
        track = ctl.Track()
        previous = 1.0  # nothing written yet: everything passes
        now = DAY
        wins = 0.0
        while now < DAY + timedelta(days=1):
            tick = ctl.Tick(
                day="20260302",
                at=now.timestamp(),
                spent=self.spent,
                target=self.budget,
                traffic=sched.traffic(now),
                traffic_ahead=sched.traffic(now + ctl.CATCH_UP),
                fraction=lambda x: mode_fraction(self.mode, x),
                events=wins if self.price else None,
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
            demand = self.demand
            if self.shift and now.hour >= self.shift[0]:
                demand *= self.shift[1]
            gained = demand * share * applied
            if self.noise:
                gained *= max(0.0, rng.gauss(1.0, self.noise))
            if self.price:  # whole wins, as many as a Poisson draw gives
                won = poisson(rng, gained / self.price)
                wins += won
                gained = won * self.price
            gained = min(gained, max(0.0, self.budget - self.spent))
            self.spent += gained
            self.hourly[now.hour] += gained
            now = later
        return track

    def worst_hour(self, hours: range = range(24)) -> float:
        return max(abs(self.hourly[h] / self.schedule_hour(h) - 1) for h in hours)

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
    for desired in [0.2] * 30 + [2.0] * 40 + [0.8] * 10:
        multiplier = ctl.next_multiplier(multiplier, desired, lowest=0.6, elapsed=0.005)
        seen.append(multiplier)
    assert seen[4] == pytest.approx(0.5 ** (5 * 0.005 / ctl.HALVING))  # halves in 10 %
    assert min(seen) == 0.6  # never below the minimum bid
    assert max(seen) == 1.0  # never above the booked bid
    assert seen[-10:] == [1.0] * 10  # about on schedule: the bid stays where it is


def test_a_new_day_starts_from_yesterday_s_average_demand_not_its_last_minutes() -> None:
    sched = DaySchedule("UTC", DAY, DAY + timedelta(days=1), SHAPE, "even")
    track = ctl.Track()
    spent, applied, now = 0.0, 1.0, DAY

    def tick(day: str, at: datetime, start: datetime) -> ctl.Tick:
        return ctl.Tick(
            day, at.timestamp(), spent, 100.0, sched.traffic(at - (start - DAY)),
            sched.traffic(at - (start - DAY) + ctl.CATCH_UP), lambda x: x,
        )  # fmt: skip

    while now < DAY + timedelta(days=1):
        rate = ctl.step(track, tick("20260302", now, DAY))
        # 400 a day at full rate, but only a quarter of that in the last two hours (the
        # others finishing their budgets outbid it)
        demand = 100.0 if now.hour >= 22 else 400.0
        later = now + TICK
        spent += demand * (sched.traffic(later) - sched.traffic(now)) * (applied + rate) / 2
        applied, now = rate, later
    assert track.demand is not None and track.demand < 200  # it saw the evening's drop
    spent = 0.0
    ctl.step(track, tick("20260303", now + timedelta(minutes=1), now))
    # the day's average (weighted by the evidence, so a little below 400), not 100
    assert 300 < track.demand < 400


def test_poisson_noise_does_not_move_the_estimate_around() -> None:
    # 80,000 wins a day at full rate, a quarter of them bought: the noise of a few minutes'
    # wins is not mistaken for a change of demand, and the rate stays near 1/4
    for seed in range(3):
        day = Day(budget=100.0, demand=400.0, price=0.005)
        day.run(seed)
        settled = day.rates[60:-30]  # the last minutes: the budget is reached, rate 0
        assert max(settled) - min(settled) < 0.15, seed
        assert statistics.pstdev(settled) < 0.025, seed
        assert abs(day.spent - 100.0) < 1.0, seed
        assert day.worst_hour(range(1, 24)) < 0.10, seed


def test_a_line_item_that_cannot_spend_stays_at_full_rate_without_runaway() -> None:
    # no win at all for the first half of the day (outbid everywhere), then some: the rate
    # stays in [0, 1], the estimate finite, and the plan does not pile up a burst
    day = Day(budget=100.0, demand=400.0, price=0.02, outage=(0, 12))
    track = day.run()
    assert all(0.0 <= r <= 1.0 for r in day.rates)
    assert day.rates[1 : 12 * 30] == [1.0] * (12 * 30 - 1)  # after the first probe
    assert track.demand is not None and math.isfinite(track.demand)
    after = [day.hourly[h] / day.schedule_hour(h) for h in range(13, 24)]
    assert max(after) < min(after) * 1.25
    assert abs(day.spent - 100.0) < 1.5


def test_a_change_of_demand_is_caught_up_within_the_hour() -> None:
    # a competitor leaves at 10:00 and the line item's demand doubles (or one arrives and it
    # halves): the estimate follows within minutes, not the slow memory's hour, and the
    # day still lands on its budget
    for factor in (2.0, 0.5):
        day = Day(budget=100.0, demand=400.0, price=0.02, shift=(10, factor))
        track = day.run()
        assert track.demand == pytest.approx(400.0 * factor, rel=0.15), factor
        assert abs(day.hourly[10] / day.schedule_hour(10) - 1) < 0.15, factor
        assert day.worst_hour(range(11, 24)) < 0.10, factor
        assert abs(day.spent - 100.0) < 1.0, factor


def test_a_new_day_with_other_demand_is_on_schedule_within_its_first_hour() -> None:
    # yesterday the line item's demand was 400 a day; today others are back in the auction
    # and it is 3 times that, or a third: the first hour is near its schedule anyway
    for factor in (3.0, 1 / 3):
        yesterday = Day(budget=100.0, demand=400.0, price=0.02)
        track = yesterday.run()
        sched = DaySchedule("UTC", DAY, DAY + timedelta(days=1), SHAPE, "even")
        spent, wins, previous, first_hour = 0.0, 0.0, track.applied, 0.0
        rng = random.Random(3)
        for n in range(30):  # today's first hour, on the day after
            now = DAY + n * TICK
            tick = ctl.Tick(
                "20260303", (now + timedelta(days=1)).timestamp(), spent, 100.0,
                sched.traffic(now), sched.traffic(now + ctl.CATCH_UP), lambda x: x,
                events=wins,
            )  # fmt: skip
            rate = ctl.step(track, tick)
            assert 0.0 <= rate <= 1.0
            share = sched.traffic(now + TICK) - sched.traffic(now)
            won = poisson(rng, 400.0 * factor * share * (previous + rate) / 2 / 0.02)
            wins += won
            spent += won * 0.02
            first_hour += won * 0.02
            previous = rate
        assert abs(first_hour / (100.0 * SHAPE[0]) - 1) < 0.2, factor
