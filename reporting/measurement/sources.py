"""Which rows a report period reads: whole rolled-up UTC days from the daily tables, every
other hour from the hourly ones, so that each hour is counted once.

Hours are kept for DEMAND_HOURLY_DAYS; before that only days exist, so a period edge there
cannot be cut at the hour: such an edge day counts in the period that holds its midday
(UTC), which splits consecutive periods without overlap (the report says so).
"""

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from django.db.models import Max, Q, QuerySet

from reporting.models import RolledDay

DAY = timedelta(days=1)
HALF_DAY = timedelta(hours=12)


def midnight(at: datetime) -> datetime:
    """The UTC midnight starting the day `at` is in."""
    return datetime.combine(at.astimezone(UTC).date(), time(0), tzinfo=UTC)


def rolled_until() -> datetime | None:
    """The end of the last day summed into the daily tables (the roll-up goes oldest
    first); None before any."""
    last = RolledDay.objects.aggregate(m=Max("day"))["m"]
    return None if last is None else last + DAY


def _ceil(at: datetime) -> datetime:
    day = midnight(at)
    return day if day == at else day + DAY


@dataclass(frozen=True)
class Split:
    """Daily rows for days in [day_from, day_to); hourly rows for the rest of [start, end)."""

    start: datetime
    end: datetime
    day_from: datetime
    day_to: datetime
    approximate: bool  # an edge day was taken whole (the midday rule)

    def hours(self, qs: QuerySet[Any], field: str = "hour") -> QuerySet[Any]:
        inside = Q(**{f"{field}__gte": self.start, f"{field}__lt": self.end})
        if self.day_from >= self.day_to:
            return qs.filter(inside)
        daily = Q(**{f"{field}__gte": self.day_from, f"{field}__lt": self.day_to})
        return qs.filter(inside & ~daily)

    def days(self, qs: QuerySet[Any], field: str = "day") -> QuerySet[Any]:
        if self.day_from >= self.day_to:
            return qs.none()
        return qs.filter(**{f"{field}__gte": self.day_from, f"{field}__lt": self.day_to})


def split_period(
    start: datetime, end: datetime, now: datetime, hourly_days: int, prefer_hours: bool = False
) -> Split:
    """The split of [start, end) given what is rolled up and what hours are still kept;
    `prefer_hours` reads the hours wherever they are kept (a report per hour)."""
    done = rolled_until()
    if done is None or end <= start:
        return Split(start, end, start, start, False)
    kept_from = midnight(now - timedelta(days=hourly_days))  # hours before this are pruned
    whole_from, whole_to = _ceil(start), midnight(end)
    lo, hi = whole_from, whole_to
    noon_from, noon_to = _ceil(start - HALF_DAY), _ceil(end - HALF_DAY)
    if noon_from < kept_from:
        lo = min(lo, noon_from)
    hi = max(hi, min(noon_to, kept_from))
    hi = min(hi, done)
    if prefer_hours:
        hi = min(hi, kept_from)
    if lo >= hi:
        return Split(start, end, start, start, False)
    return Split(start, end, lo, hi, lo < whole_from or hi > whole_to)
