"""The clock that spend and pacing run on: the wall clock, or a simulated day.

Production runs on the wall clock. The pacing simulator (`bench/pacing_sim.py`) replays a
day in minutes: it installs a `SimClock` in every process it drives, so the spend a win
charges lands on the simulated day and hour, and the controller (which takes `now` as an
argument everywhere) is called with the same simulated time. Request handling keeps its
wall-clock timing (token freshness, rate limits, flight dates); see docs/pacing.md.
"""

import time
from dataclasses import dataclass
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch on this clock."""
        ...

    def of_wall(self, wall: float) -> float:
        """This clock's time at a wall-clock instant (a token's issue time, say)."""
        ...


class WallClock:
    def now(self) -> float:
        return time.time()

    def of_wall(self, wall: float) -> float:
        return wall


@dataclass(frozen=True, slots=True)
class SimClock:
    """A day in minutes: `speed` simulated seconds pass per wall second from `start_wall`."""

    start_wall: float
    start_sim: float
    speed: float

    def now(self) -> float:
        return self.of_wall(time.time())

    def of_wall(self, wall: float) -> float:
        return self.start_sim + (wall - self.start_wall) * self.speed


_clock: Clock = WallClock()


def now() -> float:
    return _clock.now()


def of_wall(wall: float) -> float:
    return _clock.of_wall(wall)


def install(clock: Clock | None) -> None:
    """Use `clock` in this process (None: back to the wall clock)."""
    global _clock
    _clock = clock or WallClock()
