"""Events with known totals, through the stream and the real Celery worker, to the report
page, its CSV and its XLSX, in a non-UTC organisation's day and against the day before."""

import time
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.test import Client
from redis import Redis

from campaigns.models import Advertiser, Membership, Role
from reporting.models import HourlyRollup
from serving.events import Event, encode_events
from serving.keys import RedisKeys
from tests.factories import make_campaign, make_line_item, make_placement
from tests.reporting.measurement_data import ingest_up_to
from tests.reporting.report_helpers import (
    as_text,
    changes,
    csv_table,
    kpis,
    page_table,
    previous,
    xlsx_table,
)


@pytest.mark.django_db(transaction=True)
def test_known_events_reach_the_report_and_its_downloads(
    celery_worker: None, redis_client: Redis
) -> None:
    with transaction.atomic():
        org = Advertiser.objects.create(name="Pacific Gear", time_zone="America/Los_Angeles")
        campaign = make_campaign(org, daily_budget=Decimal("20.00"))
        placement = make_placement()
        li = make_line_item(campaign, "3.00")
        creative = li.creatives.get()
    now_ms = int(time.time() * 1000)
    day_ms = 86_400_000

    def event(kind: str, ts: int, cpm: int = 0) -> Event:
        return Event(
            t=kind, ts=ts, pl=placement.pk, li=li.pk, cp=campaign.pk, adv=org.pk,
            cr=creative.pk, cpm=cpm, d=f"{kind}-{ts}",
        )  # fmt: skip

    # Today: 8 impressions at a 2.50 CPM, 2 clicks, 1 creative error. Yesterday, same hour:
    # 4 impressions at 2.50 and 1 click.
    today = [event("imp", now_ms - i, 2_500_000) for i in range(8)]
    today += [event("clk", now_ms - 20), event("clk", now_ms - 21), event("err", now_ms - 22)]
    yesterday = [event("imp", now_ms - day_ms - i, 2_500_000) for i in range(4)]
    yesterday.append(event("clk", now_ms - day_ms - 10))
    stream = RedisKeys(settings.REDIS_KEY_PREFIX).events
    for e in today + yesterday:
        last = redis_client.xadd(stream, {"v": encode_events([e])})

    ingest_up_to(redis_client, last)
    assert HourlyRollup.objects.get(line_item_id=li.pk, impressions=8).clicks == 2

    user = get_user_model().objects.create_user("pacific", password="pw-12345-long")
    Membership.objects.create(user=user, advertiser=org, role=Role.ANALYST)
    client = Client()
    client.force_login(user)
    page = client.get("/reports/?range=today").content.decode()

    assert "data-zone>America/Los_Angeles<" in page
    assert kpis(page, "USD") == {
        "impressions": "8",
        "clicks": "2",
        "ctr": "25.00",
        "spend": "0.02",  # 8 x 0.0025
        "ecpm": "2.50",
        "cpc": "0.01",
        "error_rate": "12.50",
    }
    assert previous(page, "USD") == {
        "impressions": "4",
        "clicks": "1",
        "ctr": "25.00",
        "spend": "0.01",
        "ecpm": "2.50",
        "cpc": "0.01",
        "error_rate": "0.00",
    }
    assert changes(page, "USD")["impressions"] == "+100.00 %"
    for key in ("campaign", "line_item", "creative", "placement", "day", "hour"):
        shown = page_table(page, key)
        assert shown[1][shown[0].index("Impressions")] == "8", key
        assert shown[1][shown[0].index("Spend")] == "0.02", key
        assert csv_table(client, key, "range=today") == shown, key
        assert as_text(xlsx_table(client, key, "range=today")) == shown, key
    campaigns = page_table(page, "campaign")
    assert campaigns[1][campaigns[0].index("Budget used %")] == "0.10"  # 0.02 of 20.00
    local_day = datetime.fromtimestamp(now_ms / 1000, ZoneInfo(org.time_zone)).date()
    assert page_table(page, "day")[1][0] == local_day.isoformat()
