"""Closed days roll into daily rows exactly once, old hours are pruned, a late event reaches
both, and the report reads days and hours alike."""

import uuid
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from redis import Redis

from reporting.ingest import ingest_events
from reporting.measurement.rollup import roll_up_days
from reporting.models import (
    BuyerLatencyDaily,
    BuyerLatencyHourly,
    DemandDaily,
    DemandHourly,
    RolledDay,
)
from serving.events import Event
from tests.reporting.measurement_data import login, push

pytestmark = pytest.mark.django_db


def hour_row(at: datetime, door: str = "v1", **counts: Any) -> DemandHourly:
    return DemandHourly.objects.create(
        hour=at, placement_id=2, line_item_id=5, buyer_id=0, currency="USD", door=door,
        campaign_id=3, advertiser_id=1, **counts,
    )  # fmt: skip


def report(client: Client, day: datetime, group: str = "door") -> dict[str, Any]:
    query = f"range=custom&from={day.date()}&to={day.date()}&group_by={group}"
    body: dict[str, Any] = client.get(f"/api/v1/reports/measurement/?{query}").json()
    return {r["key"]: (r["requests"], r["impressions"], r["spend"]) for r in body["results"]}


def midnight(days_ago: int) -> datetime:
    return datetime.combine((datetime.now(UTC) - timedelta(days=days_ago)).date(), time(0), UTC)


def test_closed_days_become_daily_rows_once_and_old_hours_go(settings: Any) -> None:
    settings.DEMAND_HOURLY_DAYS = 30
    now = datetime.now(UTC)
    old, recent = midnight(40), midnight(3)
    for h in (1, 7, 23):
        hour_row(old + timedelta(hours=h), requests=10, impressions=4, spend=Decimal("0.5"))
    hour_row(old + timedelta(hours=2), door="openrtb", requests=1)
    hour_row(recent + timedelta(hours=5), requests=2)
    hour_row(now, requests=9)  # today: not closed
    BuyerLatencyHourly.objects.create(hour=old + timedelta(hours=1), buyer_id=7, bucket=30, count=5)
    BuyerLatencyHourly.objects.create(hour=old + timedelta(hours=9), buyer_id=7, bucket=30, count=6)
    ops = login("ops", staff=True)
    before = report(ops, old), report(ops, recent)

    first = roll_up_days(now)
    again = roll_up_days(now)

    assert first == (3, 4)  # daily rows written (old v1, old openrtb, recent), hours pruned
    assert again == (0, 0)
    assert RolledDay.objects.count() == 40  # every day from the oldest hour to yesterday
    days = {(r.day, r.door): r for r in DemandDaily.objects.all()}
    assert (days[(old, "v1")].requests, days[(old, "v1")].impressions) == (30, 12)
    assert days[(old, "v1")].spend == Decimal("1.5")
    assert (days[(old, "v1")].campaign_id, days[(old, "v1")].advertiser_id) == (3, 1)
    assert days[(old, "openrtb")].requests == 1
    assert days[(recent, "v1")].requests == 2
    # The recent hour is kept beside its day (DEMAND_HOURLY_DAYS); today's is not rolled.
    assert sorted(DemandHourly.objects.values_list("requests", flat=True)) == [2, 9]
    assert list(BuyerLatencyDaily.objects.values_list("day", "bucket", "count")) == [(old, 30, 11)]
    assert not BuyerLatencyHourly.objects.exists()
    # Reports over those days read the daily rows: the same numbers as from the hours.
    assert (report(ops, old), report(ops, recent)) == before
    assert before == ({"v1": (30, 12, "1.50"), "openrtb": (1, 0, "0.00")}, {"v1": (2, 0, "0.00")})
    hours = ops.get(
        f"/api/v1/reports/measurement/?range=custom&from={recent.date()}&to={recent.date()}"
        "&group_by=hour"
    ).json()["results"]
    assert [(r["label"][11:], r["requests"]) for r in hours] == [("05:00", 2)]
    latency = ops.get(
        f"/api/v1/reports/buyer-latency/?range=custom&from={old.date()}&to={old.date()}"
    ).json()["results"]
    assert [(r["buyer_id"], r["calls"]) for r in latency] == [(7, 11)]


def test_a_late_event_for_a_rolled_day_reaches_its_hour_and_its_day(
    settings: Any, redis_client: Redis
) -> None:
    settings.DEMAND_HOURLY_DAYS = 30
    day = midnight(2)
    hour_row(day + timedelta(hours=4), requests=3)
    roll_up_days()
    ts = int((day + timedelta(hours=4, minutes=30)).timestamp() * 1000)
    late = Event(t="req", ts=ts, pl=2, li=5, cp=3, adv=1, dr="v1", d=uuid.uuid4().hex)
    push(redis_client, [[late, late]])

    ingest_events()

    assert DemandHourly.objects.get().requests == 5
    assert DemandDaily.objects.get().requests == 5
    assert report(login("ops", staff=True), day) == {"v1": (5, 0, "0.00")}
