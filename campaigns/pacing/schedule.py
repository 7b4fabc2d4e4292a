"""A campaign's day and how much of its budget it should have spent by any moment of it.

The day runs from midnight to midnight in the advertiser's time zone. Even pacing follows the
traffic the day is expected to bring, learned from the last days' request counts per local
hour in the rollups (uniform when there is no history), not a straight line: at 03:00 a
news site has a few percent of its noon traffic, and a straight line would have a campaign
buy the night's little inventory at any price, or fall behind all afternoon.

`traffic(at)` is the expected share of the day's requests before `at` (0 at midnight, 1 at
the next); `fraction(at)` is the share of the day's budget the schedule wants spent by then:
- even: the traffic share itself;
- frontloaded: `1 - (1 - traffic) ** 1.5`, about 65 % of the budget by the day's traffic
  midpoint, 1.5 times the even rate at dawn, tapering to nothing at midnight;
- ASAP: everything at once (no throttling; the budget stops it).
"""

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.db.models import Sum
from redis import Redis

from campaigns.models import PacingMode
from reporting.models import HourlyRollup
from serving.keys import RedisKeys

HOURS = 24
HISTORY_DAYS = 7
# Fewer requests than this over the history window: not a shape, just noise; use uniform.
MIN_HISTORY_REQUESTS = 24 * 20
# Every hour keeps at least this part of a uniform share, so no hour is scheduled nothing.
UNIFORM_FLOOR = 0.02
FRONTLOAD_EXPONENT = 1.5
SHAPE_CACHE_SECONDS = 3600

UNIFORM: tuple[float, ...] = (1 / HOURS,) * HOURS


def local_midnight(at: datetime, zone: str) -> datetime:
    local = at.astimezone(ZoneInfo(zone))
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def day_bounds(at: datetime, zone: str) -> tuple[datetime, datetime]:
    """The local day around `at`: its midnight and the next (23 or 25 hours apart on DST)."""
    start = local_midnight(at, zone)
    end = local_midnight(start + timedelta(hours=26), zone)
    return start, end


def mode_fraction(mode: str, traffic: float) -> float:
    """The share of the day's budget a pacing mode schedules once `traffic` has passed."""
    traffic = min(1.0, max(0.0, traffic))
    if mode == PacingMode.ASAP:
        return 1.0
    if mode == PacingMode.FRONTLOADED:
        return 1.0 - (1.0 - traffic) ** FRONTLOAD_EXPONENT
    return traffic


@dataclass(frozen=True)
class DaySchedule:
    zone: str
    start: datetime
    end: datetime
    shape: tuple[float, ...]  # expected share of the day's requests per local hour
    mode: str

    @property
    def day(self) -> str:
        return self.start.strftime("%Y%m%d")

    def traffic(self, at: datetime) -> float:
        """The expected share of the day's requests before `at`."""
        span = (self.end - self.start).total_seconds()
        position = (at - self.start).total_seconds() / span * HOURS
        if position <= 0:
            return 0.0
        if position >= HOURS:
            return 1.0
        hour = int(position)
        return sum(self.shape[:hour]) + self.shape[hour] * (position - hour)

    def fraction(self, at: datetime) -> float:
        """The share of the day's budget the schedule wants spent by `at`."""
        return mode_fraction(self.mode, self.traffic(at))

    def hour_start(self, hour: int) -> datetime:
        span = self.end - self.start
        return self.start + span * hour / HOURS


def normalise(counts: Sequence[float]) -> tuple[float, ...]:
    total = sum(counts)
    if total < MIN_HISTORY_REQUESTS:
        return UNIFORM
    return tuple((1 - UNIFORM_FLOOR) * c / total + UNIFORM_FLOOR / HOURS for c in counts)


def learn_shape(
    zone: str, day_start: datetime, placement_ids: Iterable[int] = (), days: int = HISTORY_DAYS
) -> tuple[float, ...]:
    """Requests per local hour over the `days` days before `day_start`, as shares of the
    total: all placements, or only the given ones (a campaign that targets placements)."""
    rows = HourlyRollup.objects.filter(
        hour__gte=day_start - timedelta(days=days), hour__lt=day_start
    )
    placements = sorted(placement_ids)
    if placements:
        rows = rows.filter(placement_id__in=placements)
    counts = [0.0] * HOURS
    tz = ZoneInfo(zone)
    for row in rows.values("hour").annotate(n=Sum("requests")).order_by():
        counts[row["hour"].astimezone(tz).hour] += row["n"] or 0
    return normalise(counts)


def cached_shape(
    client: Redis, keys: RedisKeys, zone: str, day_start: datetime, placement_ids: Iterable[int]
) -> tuple[float, ...]:
    """`learn_shape`, computed once an hour per time zone, day and placement set."""
    placements = sorted(placement_ids)
    name = f"{zone}:{','.join(map(str, placements))}" if placements else zone
    key = keys.traffic_shape(name, day_start.strftime("%Y%m%d"))
    raw = client.get(key)
    if raw:
        return tuple(float(x) for x in json.loads(raw))
    shape = learn_shape(zone, day_start, placements)
    client.set(key, json.dumps(shape), ex=SHAPE_CACHE_SECONDS)
    return shape


def day_schedule(
    at: datetime, zone: str, mode: str, shape: tuple[float, ...] = UNIFORM
) -> DaySchedule:
    start, end = day_bounds(at, zone)
    return DaySchedule(zone=zone, start=start, end=end, shape=shape, mode=mode)
