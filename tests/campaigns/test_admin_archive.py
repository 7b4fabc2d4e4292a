"""The admin never deletes campaigns or line items: it archives them through the services."""

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from campaigns import services
from campaigns.models import AuditEntry, Campaign, CampaignStatus, LineItem, LineItemStatus
from tests.factories import make_campaign

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff() -> Client:
    user = get_user_model().objects.create_superuser("adops", "adops@example.com", "pw")
    client = Client()
    client.force_login(user)
    return client


def test_campaigns_and_line_items_have_no_delete_in_the_admin(staff: Client) -> None:
    campaign = make_campaign()
    li = services.create_line_item(campaign=campaign, name="L", bid=Decimal("1"), sizes=["1x1"])

    pages = [
        staff.get(f"/admin/campaigns/campaign/{campaign.pk}/change/").content.decode(),
        staff.get(f"/admin/campaigns/lineitem/{li.pk}/change/").content.decode(),
        staff.get("/admin/campaigns/campaign/").content.decode(),
        staff.get("/admin/campaigns/lineitem/").content.decode(),
    ]
    deletes = [
        staff.post(f"/admin/campaigns/campaign/{campaign.pk}/delete/", {"post": "yes"}),
        staff.post(f"/admin/campaigns/lineitem/{li.pk}/delete/", {"post": "yes"}),
    ]

    assert all('class="deletelink"' not in p and 'value="delete_selected"' not in p for p in pages)
    assert "_DELETE" not in pages[0]  # the line item inline has no delete box either
    assert [r.status_code for r in deletes] == [403, 403]
    assert Campaign.objects.filter(pk=campaign.pk).exists()
    assert LineItem.objects.filter(pk=li.pk).exists()


def test_the_archive_action_goes_through_the_services(staff: Client) -> None:
    campaign = make_campaign()
    li = services.create_line_item(campaign=campaign, name="L", bid=Decimal("1"), sizes=["1x1"])

    done = staff.post(
        "/admin/campaigns/campaign/",
        {"action": "archive_selected", "_selected_action": [campaign.pk]},
        follow=True,
    )

    campaign.refresh_from_db()
    li.refresh_from_db()
    assert "Archived 1 campaign(s)." in done.content.decode()
    assert campaign.status == CampaignStatus.ARCHIVED and li.status == LineItemStatus.ARCHIVED
    assert AuditEntry.objects.for_object(campaign).filter(action="status").count() == 2
