"""Report periods in the organisation's time zone, and the period before each to compare."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db.models import TextChoices

# Longest custom period: a year and a day, so a leap year's full year fits.
MAX_DAYS = 366


class Preset(TextChoices):
    TODAY = "today", "Today"
    YESTERDAY = "yesterday", "Yesterday"
    LAST_7_DAYS = "last_7_days", "Last 7 days"
    LAST_30_DAYS = "last_30_days", "Last 30 days"
    MONTH_TO_DATE = "month_to_date", "Month to date"
    CUSTOM = "custom", "Custom"


class PeriodError(ValueError):
    """A period the request asked for cannot be read; the message names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


@dataclass(frozen=True)
class Period:
    """Local days `first` to `last` in `zone`; data from `start` (inclusive) to `end`
    (exclusive, aware datetimes). A period reaching today ends at the next hour start."""

    preset: str
    first: date
    last: date
    start: datetime
    end: datetime
    zone: ZoneInfo

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def label(self) -> str:
        if self.first == self.last:
            return f"{self.first:%a %d %b %Y}"
        return f"{self.first:%d %b %Y} to {self.last:%d %b %Y}"

    def previous(self) -> "Period":
        """The same number of days just before, cut at the same time of day when this
        period runs to now (today until 14:00 compares with yesterday until 14:00)."""
        first = self.first - timedelta(days=self.days)
        last = self.last - timedelta(days=self.days)
        start = _midnight(first, self.zone)
        end_local = self.end.astimezone(self.zone)
        end = _at(end_local.date() - timedelta(days=self.days), end_local.time(), self.zone)
        return Period(self.preset, first, last, start, end, self.zone)


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone)


def _at(day: date, at: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, at, tzinfo=zone)


def _bounded(preset: str, first: date, last: date, zone: ZoneInfo, now: datetime) -> Period:
    # Rollups are hourly: a period that includes the current hour ends at its end.
    next_hour = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    end = min(_midnight(last + timedelta(days=1), zone), next_hour)
    return Period(preset, first, last, _midnight(first, zone), end, zone)


def _parse_day(value: str, field: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise PeriodError(field, f"{value!r} is not a date (YYYY-MM-DD).") from None


def period_from(params: dict[str, str], zone: ZoneInfo, now: datetime) -> Period:
    """The period `range` (a `Preset`, default today) with `from`/`to` for a custom one."""
    preset = params.get("range") or Preset.TODAY
    today = now.astimezone(zone).date()
    if preset == Preset.TODAY:
        return _bounded(preset, today, today, zone, now)
    if preset == Preset.YESTERDAY:
        day = today - timedelta(days=1)
        return _bounded(preset, day, day, zone, now)
    if preset == Preset.LAST_7_DAYS:
        return _bounded(preset, today - timedelta(days=6), today, zone, now)
    if preset == Preset.LAST_30_DAYS:
        return _bounded(preset, today - timedelta(days=29), today, zone, now)
    if preset == Preset.MONTH_TO_DATE:
        return _bounded(preset, today.replace(day=1), today, zone, now)
    if preset != Preset.CUSTOM:
        choices = ", ".join(Preset.values)
        raise PeriodError("range", f"{preset!r} is not one of {choices}.")
    if not params.get("from") or not params.get("to"):
        raise PeriodError("from", "a custom period needs both from and to (YYYY-MM-DD).")
    first = _parse_day(params["from"], "from")
    last = _parse_day(params["to"], "to")
    if last < first:
        raise PeriodError("to", "the last day is before the first.")
    if (last - first).days + 1 > MAX_DAYS:
        raise PeriodError("to", f"a custom period covers at most {MAX_DAYS} days.")
    if first > today:
        raise PeriodError("from", "the period starts in the future.")
    return _bounded(preset, first, min(last, today), zone, now)
