"""Which rows a report period reads: whole rolled-up UTC months from the monthly tables,
whole rolled-up UTC days from the daily ones, every other hour from the hourly ones, so that
each hour is counted once.

Hours are kept for DEMAND_HOURLY_DAYS; before that only days exist, so a period edge there
cannot be cut at the hour: such an edge day counts in the period that holds its midday
(UTC), which splits consecutive periods without overlap (the report says so).
"""

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from django.db.models import Max, Q, QuerySet

from reporting.models import RolledDay, RolledMonth

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


def month_start(at: datetime) -> datetime:
    """The UTC midnight starting the month `at` is in."""
    at = at.astimezone(UTC)
    return datetime(at.year, at.month, 1, tzinfo=UTC)


def next_month(month: datetime) -> datetime:
    """The first midnight of the month after `month` (itself a month's first)."""
    return month.replace(year=month.year + month.month // 12, month=month.month % 12 + 1)


def months_rolled_until() -> datetime | None:
    """The end of the last month summed into the monthly tables (oldest first); None
    before any."""
    last = RolledMonth.objects.aggregate(m=Max("month"))["m"]
    return None if last is None else next_month(last)


def _ceil(at: datetime) -> datetime:
    day = midnight(at)
    return day if day == at else day + DAY


@dataclass(frozen=True)
class Split:
    """Monthly rows for months in [month_from, month_to), daily rows for the other days in
    [day_from, day_to); hourly rows for the rest of [start, end)."""

    start: datetime
    end: datetime
    day_from: datetime
    day_to: datetime
    approximate: bool  # an edge day was taken whole (the midday rule)
    month_from: datetime | None = None
    month_to: datetime | None = None

    def hours(self, qs: QuerySet[Any], field: str = "hour") -> QuerySet[Any]:
        inside = Q(**{f"{field}__gte": self.start, f"{field}__lt": self.end})
        if self.day_from >= self.day_to:
            return qs.filter(inside)
        daily = Q(**{f"{field}__gte": self.day_from, f"{field}__lt": self.day_to})
        return qs.filter(inside & ~daily)

    def days(self, qs: QuerySet[Any], field: str = "day") -> QuerySet[Any]:
        """The daily rows to read whole: with months, only the days around them."""
        if self.day_from >= self.day_to:
            return qs.none()
        if self.month_from is None or self.month_to is None:
            return qs.filter(**{f"{field}__gte": self.day_from, f"{field}__lt": self.day_to})
        return qs.filter(
            _within(field, self.day_from, self.month_from)
            | _within(field, self.month_to, self.day_to)
        )

    def month_days(
        self, qs: QuerySet[Any], currency: str, field: str = "day"
    ) -> list[QuerySet[Any]]:
        """The daily rows of the months in other currencies than `currency`: their amounts
        convert at each day's rate, so they are read from the days (their counts from the
        months). Two querysets, the currencies before and after `currency`: each a range of
        the (currency, day) index that covers them, read without the table, where "not
        `currency`" would be a scan of it."""
        if self.month_from is None or self.month_to is None:
            return []
        months = _within(field, self.month_from, self.month_to)
        return [qs.filter(months, currency__lt=currency), qs.filter(months, currency__gt=currency)]

    def months(self, qs: QuerySet[Any], field: str = "month") -> QuerySet[Any]:
        """The monthly rows to read: every currency's counts, the report currency's amounts
        (`month_days` has the others')."""
        if self.month_from is None or self.month_to is None:
            return qs.none()
        return qs.filter(**{f"{field}__gte": self.month_from, f"{field}__lt": self.month_to})


def _within(field: str, low: datetime, high: datetime) -> Q:
    return Q(**{f"{field}__gte": low, f"{field}__lt": high})


def split_period(
    start: datetime,
    end: datetime,
    now: datetime,
    hourly_days: int,
    prefer_hours: bool = False,
    months: bool = False,
) -> Split:
    """The split of [start, end) given what is rolled up and what hours are still kept;
    `prefer_hours` reads the hours wherever they are kept (a report per hour); `months`
    reads whole rolled months from the monthly rows (a report not over time)."""
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
    split = Split(start, end, lo, hi, lo < whole_from or hi > whole_to)
    months_done = months_rolled_until() if months else None
    if months_done is None:
        return split
    first = month_start(lo)
    month_from = first if first == lo else next_month(first)
    month_to = min(month_start(hi), months_done)
    if month_from >= month_to:
        return split
    return Split(split.start, end, lo, hi, split.approximate, month_from, month_to)
