"""The demo data, the dashboard and the report API as their users see them."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from campaigns.demo import load_demo
from campaigns.demo_accounts import DEMO_STAFF, DEMO_USER
from campaigns.models import Campaign, LineItem, Placement
from reporting.models import ConsentHourly, HourlyRollup

pytestmark = pytest.mark.django_db


def logged_in(username: str, password: str) -> Client:
    client = Client()
    assert client.login(username=username, password=password)
    return client


def test_the_demo_loads_once_and_can_be_loaded_again() -> None:
    load_demo()
    load_demo()

    assert Campaign.objects.count() == 2
    assert LineItem.objects.count() == 3
    assert Placement.objects.count() == 2
    assert all(li.creatives.count() == 1 for li in LineItem.objects.all())


def test_the_dashboard_shows_the_members_campaigns_and_delivery() -> None:
    data = load_demo()
    li = LineItem.objects.get(name="Boots, run of network")
    HourlyRollup.objects.create(
        hour=datetime.now(UTC).replace(minute=0, second=0, microsecond=0),
        placement_id=1,
        line_item_id=li.pk,
        campaign_id=li.campaign_id,
        advertiser_id=data.advertiser.pk,
        requests=10,
        impressions=7,
        clicks=2,
        spend=Decimal("0.0315"),
    )
    client = logged_in(*DEMO_USER)

    page = client.get("/").content.decode()
    report = client.get("/reports/").content.decode()

    assert "Spring hiking boots" in page and "Tent clearance" in page
    assert page.count("Delivering</span>") == 2
    assert 'data-kpi="impressions">7<' in report
    assert 'data-kpi="ctr">28.57<' in report


def test_outsiders_see_nothing_and_anonymous_users_are_sent_to_log_in() -> None:
    load_demo()
    HourlyRollup.objects.create(
        hour=datetime.now(UTC), placement_id=1, line_item_id=1, campaign_id=1,
        advertiser_id=Campaign.objects.first().advertiser_id,  # type: ignore[union-attr]
        impressions=3,
    )  # fmt: skip
    get_user_model().objects.create_user("outsider", password="another-long-pw")
    outsider = logged_in("outsider", "another-long-pw")

    assert "Spring hiking boots" not in outsider.get("/").content.decode()
    assert outsider.get("/api/v1/reports/hourly/").json()["count"] == 0
    assert Client().get("/").status_code == 302
    assert Client().get("/api/v1/reports/hourly/").status_code == 401
    assert logged_in(*DEMO_STAFF).get("/api/v1/reports/hourly/").json()["count"] == 1


def test_the_report_api_filters_paginates_and_explains_bad_input() -> None:
    load_demo()
    staff = logged_in(*DEMO_STAFF)
    for hour in range(3):
        HourlyRollup.objects.create(
            hour=datetime(2026, 11, 1, hour, tzinfo=UTC), placement_id=1, line_item_id=hour + 1,
            campaign_id=1, advertiser_id=1, impressions=hour,
        )  # fmt: skip

    page = staff.get("/api/v1/reports/hourly/?since=2026-11-01T01:00:00Z").json()
    bad = staff.get("/api/v1/reports/hourly/?since=yesterday")
    bad_id = staff.get("/api/v1/reports/hourly/?campaign=abc")

    assert page["count"] == 2
    assert [r["line_item_id"] for r in page["results"]] == [3, 2]
    assert "next" in page
    assert bad.status_code == 400
    assert bad.json()["error"]["fields"] == [
        {"path": "since", "message": "'yesterday' is not an ISO 8601 date or time."}
    ]
    assert bad_id.json()["error"]["fields"] == [
        {"path": "campaign", "message": "'abc' is not an id."}
    ]


def test_staff_reach_the_admin_pages() -> None:
    load_demo()
    staff = logged_in(*DEMO_STAFF)

    line_item = LineItem.objects.first()
    assert line_item is not None
    for url in ("/admin/", "/admin/campaigns/campaign/",
                f"/admin/campaigns/lineitem/{line_item.pk}/change/",
                "/admin/creatives/creative/", "/admin/campaigns/placement/"):  # fmt: skip
        assert staff.get(url).status_code == 200, url


def test_ad_ops_see_consent_coverage_and_advertisers_do_not() -> None:
    load_demo()
    ConsentHourly.objects.create(
        hour=datetime.now(UTC).replace(minute=0, second=0, microsecond=0),
        outcome="blocked", reason="gdpr_no_consent", valid_signal=False, requests=4,
    )  # fmt: skip

    staff_page = logged_in(*DEMO_STAFF).get("/reports/").content.decode()
    member_page = logged_in(*DEMO_USER).get("/reports/").content.decode()

    assert 'data-consent="requests">4<' in staff_page
    assert "gdpr_no_consent" in staff_page
    assert "Consent coverage" not in member_page
