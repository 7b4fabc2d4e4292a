"""The report over the monthly, daily and hourly tiers gives exactly what the hourly rows
alone gave for the same events: every grouping, every figure, the totals and the FX note,
in several currencies (one without a rate), external demand and three doors."""

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from campaigns.models import FxRateSet
from reporting.measurement.fx import FxHistory
from reporting.measurement.report import MeasurementReport, Source, measure
from reporting.measurement.rollup import roll_up_days
from reporting.measurement.sources import month_start
from reporting.models import DemandDaily, DemandHourly, DemandMonthly, RolledMonth
from reporting.reports.tables import money

pytestmark = pytest.mark.django_db

UTC_ZONE = ZoneInfo("UTC")
GROUPS = ("campaign", "line_item", "placement", "publisher", "buyer", "door", "day")
# (line item, currency, buyer, door, placement): ours in three currencies, external demand.
KINDS = (
    (5, "USD", 0, "v1", 2), (5, "USD", 0, "openrtb", 3), (6, "EUR", 0, "vast", 2),
    (7, "GBP", 0, "v1", 3), (8, "CHF", 0, "openrtb", 2), (0, "USD", 9, "openrtb", 3),
)  # fmt: skip


def report(now: datetime, start: datetime, group: str, hourly_days: int) -> MeasurementReport:
    source = Source(
        DemandHourly.objects.all(), DemandDaily.objects.all(), DemandMonthly.objects.all()
    )
    return measure(source, group, "USD", start, now, UTC_ZONE, now, hourly_days)


def figures(r: MeasurementReport) -> dict[str, Any]:
    return {"rows": list(r.rows), "totals": r.totals, "fx": r.fx_note, "notes": r.notes}


def make_hours(start: datetime, now: datetime) -> list[DemandHourly]:
    """Rows on days all over the period: edge days, whole months, this month, today."""
    days = [(start + timedelta(days=n)).date() for n in range(0, (now - start).days, 4)]
    hours = [datetime.combine(d, time(h), UTC) for d in days for h in (0, 13, 23)]
    hours += [datetime.combine(now.date(), time(0), UTC)]  # today, still hourly
    rows = []
    for i, at in enumerate(h for h in hours if h < now):
        for k, (li, currency, buyer, door, placement) in enumerate(KINDS):
            n = 7 + (i * 13 + k * 5) % 90
            rows.append(
                DemandHourly(
                    hour=at,
                    placement_id=placement,
                    line_item_id=li,
                    buyer_id=buyer,
                    currency=currency,
                    door=door,
                    campaign_id=li * 10,
                    advertiser_id=li and 1,
                    requests=n * 3,
                    bids=n if buyer else 0,
                    wins=n,
                    impressions=n - 1,
                    clicks=n // 9,
                    errors=n % 3,
                    viewable=n // 2,
                    measurable=n - 2,
                    video_start=n // 3,
                    first_quartile=n // 4,
                    midpoint=n // 5,
                    third_quartile=n // 6,
                    complete=n // 7,
                    spend=Decimal("0.000123457") * (n * 1009 + i),
                )
            )
    return DemandHourly.objects.bulk_create(rows)


def test_the_tiers_sum_to_exactly_what_the_hours_alone_give(settings: Any) -> None:
    # given: a bit over three months of hourly rows, and a reference rate set every few days
    settings.DEMAND_HOURLY_DAYS = 400
    now = datetime.now(UTC)
    start = month_start(month_start(month_start(now) - timedelta(days=1)) - timedelta(days=1))
    start -= timedelta(days=5)  # a few edge days before the first whole month
    hours = make_hours(start, now)
    for n in range(0, (now - start).days + 1, 3):
        FxRateSet.objects.create(
            rates_date=(start + timedelta(days=n)).date(), source="t",
            rates={"USD": "1", "EUR": f"1.{1000 + n * 37}", "GBP": f"1.{2500 + n * 11}"},
        )  # fmt: skip
    from_hours = {g: figures(report(now, start, g, 400)) for g in GROUPS}

    # when: the days and months are rolled up and every hour before yesterday is deleted
    settings.DEMAND_HOURLY_DAYS = 1
    for _ in range(3):  # at most 62 days per run
        roll_up_days(now)

    # then: the report reads months, days and today's hours, and every figure is the same
    assert RolledMonth.objects.count() >= 2
    assert DemandMonthly.objects.filter(currency="EUR").exists()
    assert DemandHourly.objects.filter(hour__lt=now - timedelta(days=2)).count() == 0
    from_tiers = {g: figures(report(now, start, g, 1)) for g in GROUPS}
    for group in GROUPS:
        assert from_tiers[group] == from_hours[group], group
    # and they are the hours' sums, converted hour by hour at the day's rate here
    fx = FxHistory(now.date() + timedelta(days=1))
    spend, requests = Decimal(0), 0
    unconverted: dict[str, Decimal] = defaultdict(Decimal)
    for row in hours:
        requests += row.requests
        day: date = row.hour.date()
        value = fx.convert(row.spend, row.currency, "USD", day)
        if value is None:
            unconverted[row.currency] += row.spend
        else:
            spend += value
    totals = from_tiers["line_item"]["totals"]
    assert totals["requests"] == requests
    assert totals["spend"] == money(spend)
    assert totals["unconverted"] == {"CHF": str(money(unconverted["CHF"]))}
    assert [r["key"] for r in from_tiers["door"]["rows"]] == ["openrtb", "v1", "vast"]
