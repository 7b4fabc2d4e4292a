"""Each campaign's pacing state where people look: the API, the admin and the report page."""

import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from redis import Redis

from campaigns import services
from campaigns.models import Campaign, LineItem, Membership, Role
from campaigns.pacing.services import run_pacing
from campaigns.snapshot import redis_keys
from reporting.models import HourlyRollup
from tests.campaigns.test_api import member
from tests.factories import make_advertiser, make_campaign, make_line_item

pytestmark = pytest.mark.django_db

NANOS = 1_000_000_000


@pytest.fixture
def paced(redis_client: Redis) -> tuple[Campaign, LineItem]:
    campaign = make_campaign(
        make_advertiser("Pacer"),
        daily_budget=Decimal("48.00"),
        start_at=timezone.now() - timedelta(days=2),
    )
    li = make_line_item(campaign, "5.00")
    services.update_line_item(li, daily_budget=Decimal("30.00"))
    day = time.strftime("%Y%m%d", time.gmtime())
    key = redis_keys().spend(day, campaign.pk)
    redis_client.hset(key, mapping={"s": 12 * NANOS, f"s:{li.pk}": 12 * NANOS, "i": 2400})
    redis_client.hset(redis_keys().lifetime_spend(campaign.pk), "s", 12 * NANOS)
    HourlyRollup.objects.create(
        hour=timezone.now().replace(minute=0, second=0, microsecond=0),
        placement_id=1, line_item_id=li.pk, campaign_id=campaign.pk,
        advertiser_id=campaign.advertiser_id, impressions=2000, spend=Decimal("10.00"),
    )  # fmt: skip
    run_pacing(timezone.now())
    return campaign, li


def test_the_api_gives_spend_today_schedule_rate_and_prediction(
    paced: tuple[Campaign, LineItem],
) -> None:
    campaign, li = paced
    api = member(campaign.advertiser, Role.ANALYST)

    response = api.get(f"/api/v1/campaigns/{campaign.pk}/pacing/")

    assert response.status_code == 200
    body = response.json()
    assert body["campaign"] == campaign.pk
    assert body["spend_today"] == "12"
    assert body["budget_today"] == "48"
    assert body["impressions_today"] == 2400
    assert body["time_zone"] == "UTC"
    assert body["pacing_mode"] == "even"
    assert 0.0 <= body["pass_through"] <= 1.0
    assert body["updated_at"] is not None
    fraction = body["schedule_fraction"]
    expected = Decimal(48) * Decimal(str(fraction))
    assert Decimal(body["schedule_now"]) == pytest.approx(expected, abs=Decimal("0.01"))
    [line] = body["line_items"]
    assert (line["id"], line["spend_today"], line["daily_budget"]) == (li.pk, "12", "30")
    assert line["bid_multiplier"] == 1.0


def test_another_organisation_gets_a_404(paced: tuple[Campaign, LineItem]) -> None:
    campaign, _ = paced
    outsider = member(make_advertiser("Elsewhere"))
    assert outsider.get(f"/api/v1/campaigns/{campaign.pk}/pacing/").status_code == 404


def test_the_admin_campaign_page_shows_pacing(paced: tuple[Campaign, LineItem]) -> None:
    campaign, _ = paced
    staff = get_user_model().objects.create_user("ops", is_staff=True, is_superuser=True)
    browser = Client()
    browser.force_login(staff)

    page = browser.get(f"/admin/campaigns/campaign/{campaign.pk}/change/").content.decode()

    assert "data-pacing" in page
    assert "spent <b>12</b> of <b>48</b> USD" in page
    assert f"/reports/pacing/{campaign.pk}/" in page


def test_the_report_charts_spend_against_the_schedule(paced: tuple[Campaign, LineItem]) -> None:
    campaign, _ = paced
    user = get_user_model().objects.create_user("viewer")
    Membership.objects.create(user=user, advertiser=campaign.advertiser, role=Role.ANALYST)
    browser = Client()
    browser.force_login(user)

    page = browser.get(f"/reports/pacing/{campaign.pk}/").content.decode()

    assert 'data-chart="pacing"' in page
    assert 'data-series="schedule"' in page and 'data-series="spend"' in page
    assert 'data-pacing="spend">12<' in page
    # the rollups' hour so far is in the table (10.00 rolled up, Redis already has 12)
    assert "10.0000" in page
    other = get_user_model().objects.create_user("nosy")
    browser.force_login(other)
    assert browser.get(f"/reports/pacing/{campaign.pk}/").status_code == 404
