"""Rolled days roll into monthly rows exactly once; a report not over time reads whole months
from them (amounts in the report currency only: other currencies' days still convert at
each day's rate), the edge days from the daily rows; a late event reaches its month."""

import uuid
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from redis import Redis

from campaigns.models import FxRateSet
from reporting.ingest import ingest_events
from reporting.measurement.rollup import roll_up_days
from reporting.measurement.sources import month_start, next_month
from reporting.models import DemandDaily, DemandHourly, DemandMonthly, RolledMonth
from serving.events import Event
from tests.reporting.measurement_data import login, push

pytestmark = pytest.mark.django_db


def at(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour), UTC)


def hour_row(when: datetime, li: int, currency: str, **counts: Any) -> None:
    DemandHourly.objects.create(
        hour=when, placement_id=2, line_item_id=li, buyer_id=0, currency=currency, door="v1",
        campaign_id=li * 10, advertiser_id=1, **counts,
    )  # fmt: skip


def report(client: Client, first: date, last: date, group: str) -> dict[str, Any]:
    query = f"range=custom&from={first}&to={last}&group_by={group}&currency=USD"
    body: dict[str, Any] = client.get(f"/api/v1/reports/measurement/?{query}").json()
    assert "results" in body, body
    return body


def test_a_month_rolls_once_and_reports_read_it_beside_the_edge_days(settings: Any) -> None:
    settings.DEMAND_HOURLY_DAYS = 30
    now = datetime.now(UTC)
    month = month_start(month_start(now) - timedelta(days=1)) - timedelta(days=1)
    month = month_start(month)  # two months back: every day of it is closed and rolled
    first, last = (month - timedelta(days=1)).date(), next_month(month).date()
    tenth, twentieth = (month + timedelta(days=9)).date(), (month + timedelta(days=19)).date()
    hour_row(at(first, 23), 5, "USD", requests=5, impressions=1, spend=Decimal("0.25"))
    hour_row(at(tenth, 3), 5, "USD", requests=60, impressions=10, spend=Decimal("0.60"))
    hour_row(at(tenth, 4), 5, "USD", requests=40, impressions=10, spend=Decimal("0.40"))
    hour_row(at(tenth, 4), 6, "EUR", requests=8, impressions=4, spend=Decimal("1.00"))
    hour_row(at(twentieth, 9), 6, "EUR", requests=2, impressions=2, spend=Decimal("2.00"))
    hour_row(at(last, 0), 5, "USD", requests=7, impressions=3, spend=Decimal("0.35"))
    FxRateSet.objects.create(rates_date=tenth, rates={"USD": "1", "EUR": "1.20"}, source="t")
    FxRateSet.objects.create(rates_date=twentieth, rates={"USD": "1", "EUR": "1.10"}, source="t")

    roll_up_days(now)
    roll_up_days(now)  # again: nothing twice

    assert RolledMonth.objects.filter(month=month).count() == 1
    months = {(r.line_item_id, r.currency): r for r in DemandMonthly.objects.filter(month=month)}
    assert set(months) == {(5, "USD"), (6, "EUR")}
    assert (months[(5, "USD")].requests, months[(5, "USD")].spend) == (100, Decimal("1.00"))
    assert (months[(6, "EUR")].requests, months[(6, "EUR")].spend) == (10, Decimal("3.00"))
    assert months[(5, "USD")].campaign_id == 50
    assert not RolledMonth.objects.filter(month=month_start(now)).exists()  # not over yet

    ops = login("ops", staff=True)
    by_li = report(ops, first, last, "line_item")
    by_day = report(ops, first, last, "day")  # per day: read from the daily rows
    rows = {r["key"]: (r["requests"], r["impressions"], r["spend"]) for r in by_li["results"]}
    # 5: 5 + 100 + 7 requests, 0.25 + 1.00 + 0.35 USD; 6: 1.00 EUR at 1.20 + 2.00 at 1.10.
    assert rows == {5: (112, 24, "1.60"), 6: (10, 6, "3.40")}
    assert by_li["totals"]["spend"] == by_day["totals"]["spend"] == "5.00"
    assert by_li["totals"]["requests"] == by_day["totals"]["requests"] == 122
    assert f"reference rates of each day ({tenth} to {twentieth})" in by_li["fx_note"]
    # The month's own-currency figures come from its monthly row: without the daily rows
    # of the month in USD the report is the same.
    DemandDaily.objects.filter(day__gte=month, day__lt=next_month(month), currency="USD").delete()
    assert report(ops, first, last, "line_item")["results"] == by_li["results"]


def test_a_late_event_for_a_rolled_month_reaches_it(settings: Any, redis_client: Redis) -> None:
    settings.DEMAND_HOURLY_DAYS = 400
    now = datetime.now(UTC)
    month = month_start(month_start(now) - timedelta(days=1))  # last month
    when = month + timedelta(days=3, hours=4)
    hour_row(when, 5, "USD", requests=3)
    roll_up_days(now)
    assert DemandMonthly.objects.get(month=month).requests == 3
    ts = int((when + timedelta(minutes=30)).timestamp() * 1000)
    late = Event(t="req", ts=ts, pl=2, li=5, cp=50, adv=1, dr="v1", d=uuid.uuid4().hex)
    push(redis_client, [[late, late]])

    ingest_events()

    assert DemandHourly.objects.get().requests == 5
    assert DemandDaily.objects.get().requests == 5
    assert DemandMonthly.objects.get().requests == 5
