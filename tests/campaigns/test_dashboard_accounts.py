"""Dashboard accounts: switching organisations and managing API tokens."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from campaigns.models import ApiToken, Membership, Role
from tests.factories import make_advertiser, make_campaign

pytestmark = pytest.mark.django_db


def test_a_member_of_two_organisations_switches_between_them() -> None:
    user = get_user_model().objects.create_user("both", password="pw")
    first, second, foreign = make_campaign(), make_campaign(), make_campaign()
    for campaign in (first, second):
        Membership.objects.create(user=user, advertiser=campaign.advertiser, role=Role.ANALYST)
    client = Client()
    client.force_login(user)

    everything = client.get("/").content.decode()
    client.post("/organisation/", {"organisation": second.advertiser_id, "next": "/"})
    only_second = client.get("/").content.decode()
    refused = client.post(
        "/organisation/", {"organisation": foreign.advertiser_id, "next": "/"}, follow=True
    )

    assert first.name in everything and second.name in everything
    assert foreign.name not in everything
    assert second.name in only_second and first.name not in only_second
    assert "You are not a member of that organisation." in refused.content.decode()
    assert foreign.name not in refused.content.decode()


def test_tokens_are_shown_once_and_can_be_revoked() -> None:
    user = get_user_model().objects.create_user("dev", password="pw")
    Membership.objects.create(user=user, advertiser=make_advertiser(), role=Role.MANAGER)
    client = Client()
    client.force_login(user)

    created = client.post("/settings/tokens/", {"name": "CI sync"}).content.decode()
    token = ApiToken.objects.get()
    key = created.split("data-new-key>")[1].split("<")[0]
    api = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    before = api.get("/api/v1/campaigns/").status_code
    client.post("/settings/tokens/", {"revoke": token.pk})
    after = api.get("/api/v1/campaigns/").status_code
    listing = client.get("/settings/tokens/").content.decode()

    assert key.startswith(token.prefix)
    assert token.key_hash != key and key not in token.key_hash
    assert (before, after) == (200, 401)
    assert "revoked" in listing and key not in listing
