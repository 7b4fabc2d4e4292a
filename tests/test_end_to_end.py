"""One ad end to end on the real parts: services, Celery, Redis, the ASGI app, rollups, reports."""

from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django.test import Client
from django.utils import timezone

from adsplatform.asgi import application, serving_application
from campaigns import services
from campaigns.models import Membership, Role
from campaigns.snapshot import published_version
from reporting.models import HourlyRollup
from reporting.tasks import ingest_events_task
from tests.conftest import run, wait_for
from tests.factories import make_advertiser, make_creative, make_placement


@pytest.mark.django_db(transaction=True)
def test_one_ad_from_campaign_to_report(celery_worker: None) -> None:
    # given: a campaign created through the services; the commit triggers a publish
    with transaction.atomic():
        advertiser = make_advertiser("Acme")
        placement = make_placement(sizes=["300x250"], floor=Decimal("0.50"))
        campaign = services.create_campaign(
            advertiser=advertiser,
            name="Boots",
            start_at=timezone.now() - timedelta(hours=1),
            daily_budget=Decimal("25.00"),
        )
        winner = services.create_line_item(
            campaign=campaign,
            name="High",
            bid=Decimal("4.00"),
            sizes=["300x250"],
            creatives=[make_creative(advertiser)],
        )
        services.create_line_item(
            campaign=campaign,
            name="Low",
            bid=Decimal("2.40"),
            sizes=["300x250"],
            creatives=[make_creative(advertiser)],
        )
        services.activate_campaign(campaign)
    wait_for(published_version)

    # when: a device asks for an ad and fires its impression and click through real ASGI
    async def device() -> dict[str, Any]:
        transport = httpx.ASGITransport(app=application)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://ads.test") as http:
                ad = await http.post(
                    "/v1/ad",
                    json={"placement": placement.key, "slots": [{"id": "s", "sizes": ["300x250"]}]},
                )
                decision = ad.json()["decisions"][0]
                imp = await http.get(decision["impression_url"])
                again = await http.get(decision["impression_url"])
                click = await http.get(decision["click_url"])
                forged = await http.get(decision["click_url"][:-4] + "AAAA")
                return {
                    "ad": ad.status_code,
                    "line_item": decision["line_item"],
                    "imp": imp.status_code,
                    "again": again.status_code,
                    "click": (click.status_code, click.headers["location"]),
                    "forged": forged.status_code,
                }
        finally:
            await serving_application.shutdown()

    served = run(device())
    ingest_events_task.delay()
    row = wait_for(lambda: HourlyRollup.objects.filter(line_item_id=winner.pk, clicks=1).first())

    # then: the exact numbers, from request to report
    assert served == {
        "ad": 200,
        "line_item": winner.pk,
        "imp": 200,
        "again": 200,
        "click": (302, "https://shop.example/landing?id=1"),
        "forged": 400,
    }
    assert (row.requests, row.impressions, row.clicks) == (1, 1, 1)
    assert row.spend == Decimal("0.00241")  # second price 2.40 + 0.01 CPM, one impression
    assert row.placement_id == placement.pk
    assert row.campaign_id == campaign.pk
    assert row.advertiser_id == advertiser.pk

    member = get_user_model().objects.create_user("member", password="pw-12345-long")
    Membership.objects.create(user=member, advertiser=advertiser, role=Role.ANALYST)
    browser = Client()
    browser.force_login(member)
    api = browser.get("/api/v1/reports/hourly/").json()
    assert api["count"] == 1
    assert api["results"][0]["impressions"] == 1
    assert api["results"][0]["spend"] == "0.002410000"
    page = browser.get("/reports/").content.decode()
    assert 'data-kpi="impressions">1<' in page
    assert "High" in page
