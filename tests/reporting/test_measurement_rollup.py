"""Old hours roll into days exactly once, and the report reads both alike."""

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from reporting.measurement.rollup import roll_up_days
from reporting.models import BuyerLatencyDaily, BuyerLatencyHourly, DemandDaily, DemandHourly
from tests.reporting.measurement_data import login

pytestmark = pytest.mark.django_db


def hour_row(at: datetime, door: str = "v1", **counts: Any) -> DemandHourly:
    return DemandHourly.objects.create(
        hour=at, placement_id=2, line_item_id=5, buyer_id=0, currency="USD", door=door,
        campaign_id=3, advertiser_id=1, **counts,
    )  # fmt: skip


def report(client: Client, day: datetime) -> dict[str, Any]:
    query = f"range=custom&from={day.date()}&to={day.date()}&group_by=door"
    body: dict[str, Any] = client.get(f"/api/v1/reports/measurement/?{query}").json()
    return {r["key"]: (r["requests"], r["impressions"], r["spend"]) for r in body["results"]}


def test_hours_past_the_setting_become_one_row_per_day_once(settings: Any) -> None:
    settings.DEMAND_HOURLY_DAYS = 30
    now = datetime.now(UTC)
    old = datetime.combine((now - timedelta(days=40)).date(), time(0), tzinfo=UTC)
    recent = datetime.combine((now - timedelta(days=3)).date(), time(0), tzinfo=UTC)
    for h in (1, 7, 23):
        hour_row(old + timedelta(hours=h), requests=10, impressions=4, spend=Decimal("0.5"))
    hour_row(old + timedelta(hours=2), door="openrtb", requests=1)
    hour_row(recent + timedelta(hours=5), requests=2)
    BuyerLatencyHourly.objects.create(hour=old + timedelta(hours=1), buyer_id=7, bucket=30, count=5)
    BuyerLatencyHourly.objects.create(hour=old + timedelta(hours=9), buyer_id=7, bucket=30, count=6)
    ops = login("ops", staff=True)
    before = report(ops, old)

    rolled = roll_up_days(now)
    again = roll_up_days(now)

    assert (rolled, again) == (4, 0)
    days = {r.door: r for r in DemandDaily.objects.all()}
    assert (days["v1"].day, days["v1"].requests, days["v1"].impressions) == (old, 30, 12)
    assert days["v1"].spend == Decimal("1.5")
    assert (days["v1"].campaign_id, days["v1"].advertiser_id) == (3, 1)
    assert days["openrtb"].requests == 1
    assert list(DemandHourly.objects.values_list("hour", flat=True)) == [
        recent + timedelta(hours=5)
    ]
    assert list(BuyerLatencyDaily.objects.values_list("day", "bucket", "count")) == [(old, 30, 11)]
    assert not BuyerLatencyHourly.objects.exists()
    # The report over that day reads the daily rows: the same numbers as from the hours.
    assert report(ops, old) == before == {"v1": (30, 12, "1.50"), "openrtb": (1, 0, "0.00")}
    latency = ops.get(
        f"/api/v1/reports/buyer-latency/?range=custom&from={old.date()}&to={old.date()}"
    ).json()["results"]
    assert [(r["buyer_id"], r["calls"]) for r in latency] == [(7, 11)]


def test_a_late_hour_for_a_rolled_day_adds_to_its_row(settings: Any) -> None:
    settings.DEMAND_HOURLY_DAYS = 30
    now = datetime.now(UTC)
    old = datetime.combine((now - timedelta(days=40)).date(), time(0), tzinfo=UTC)
    hour_row(old + timedelta(hours=4), requests=3)
    roll_up_days(now)
    hour_row(old + timedelta(hours=6), requests=2)

    roll_up_days(now)

    assert DemandDaily.objects.get().requests == 5
    assert not DemandHourly.objects.exists()
