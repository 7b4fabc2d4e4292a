"""The report chart's series: impressions and clicks per hour or day, beside the previous
period's, with every bucket present (zero where nothing delivered)."""

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from reporting.reports.periods import Period
from reporting.reports.tables import Timeline

# Periods up to two days are drawn per hour, longer ones per day.
HOURLY_UP_TO_DAYS = 2


def _buckets(period: Period, hourly: bool) -> Iterator[datetime]:
    if hourly:
        at = period.start.astimezone(period.zone)
        while at < period.end:
            yield at
            # UTC arithmetic: a local hour repeated or skipped by a DST change stays one bucket.
            at = (at + timedelta(hours=1)).astimezone(period.zone)
        return
    for i in range(period.days):
        day = period.first + timedelta(days=i)
        yield datetime(day.year, day.month, day.day, tzinfo=period.zone)


def _counts(line: Timeline, hourly: bool) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for (hour, _), s in line.hours.items():
        key = f"{hour:%Y-%m-%d %H:00}" if hourly else f"{hour:%Y-%m-%d}"
        imps, clicks = out.get(key, (0, 0))
        # Counts add across currencies; amounts never do, so the chart shows no spend sum.
        out[key] = (imps + s.impressions, clicks + s.clicks)
    return out


def chart_data(
    period: Period, line: Timeline, previous: Period, before: Timeline
) -> dict[str, Any]:
    """Labels in local time and the three series the page's chart draws."""
    hourly = period.days <= HOURLY_UP_TO_DAYS
    fmt = "%Y-%m-%d %H:00" if hourly else "%Y-%m-%d"
    now, then = _counts(line, hourly), _counts(before, hourly)
    labels = [f"{b:{fmt}}" for b in _buckets(period, hourly)]
    earlier = [f"{b:{fmt}}" for b in _buckets(previous, hourly)]
    return {
        "unit": "hour" if hourly else "day",
        "labels": [label[11:] if hourly and period.days == 1 else label for label in labels],
        "impressions": [now.get(label, (0, 0))[0] for label in labels],
        "clicks": [now.get(label, (0, 0))[1] for label in labels],
        "previous_impressions": [then.get(label, (0, 0))[0] for label in earlier][: len(labels)],
        "previous_label": f"Impressions, {previous.label}",
        "zone": period.zone.key,
    }
