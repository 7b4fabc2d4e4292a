"""The pacing page and API keep charged-at-the-win spend, its pending part and billed spend
apart, and call wins wins."""

import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from redis import Redis

from campaigns.models import Membership, Role
from campaigns.snapshot import redis_keys
from reporting.models import HourlyRollup
from tests.factories import make_advertiser, make_campaign, make_line_item

pytestmark = pytest.mark.django_db

NANOS = 1_000_000_000


def test_pending_wins_are_shown_apart_from_billed_spend(redis_client: Redis) -> None:
    campaign = make_campaign(
        make_advertiser("Pending"),
        daily_budget=Decimal("48.00"),
        start_at=timezone.now() - timedelta(days=1),
    )
    li = make_line_item(campaign, "5.00")
    day = time.strftime("%Y%m%d", time.gmtime())
    minute = int(time.time() // 60)
    # 12.00 charged at 2,400 wins, 2.00 of it for wins whose impression has not shown yet.
    redis_client.hset(
        redis_keys().spend(day, campaign.pk),
        mapping={
            "s": 12 * NANOS, f"s:{li.pk}": 12 * NANOS, "i": 2400, f"i:{li.pk}": 2400,
            f"p:{li.pk}:{minute}": 2 * NANOS,
        },
    )  # fmt: skip
    HourlyRollup.objects.create(
        hour=timezone.now().replace(minute=0, second=0, microsecond=0),
        placement_id=1, line_item_id=li.pk, campaign_id=campaign.pk,
        advertiser_id=campaign.advertiser_id, impressions=2000, spend=Decimal("10.00"),
    )  # fmt: skip
    user = get_user_model().objects.create_user("viewer")
    Membership.objects.create(user=user, advertiser=campaign.advertiser, role=Role.ANALYST)
    browser = Client()
    browser.force_login(user)

    page = browser.get(f"/reports/pacing/{campaign.pk}/").content.decode()
    api = browser.get(f"/api/v1/campaigns/{campaign.pk}/pacing/").json()

    assert "Charged today, at the win" in page
    assert 'data-pacing="spend">12<' in page
    assert 'data-pacing="pending">2<' in page
    assert 'data-pacing="billed">10.0000<' in page
    assert 'data-pacing="wins">2400<' in page
    assert "Billed so far (rolled up)" in page
    assert (api["spend_today"], api["pending_spend_today"], api["wins_today"]) == ("12", "2", 2400)
    assert api["impressions_today"] == 2400  # the old name stays for existing integrations
    [line] = api["line_items"]
    assert (line["wins_today"], line["pending_spend_today"]) == (2400, "2")
