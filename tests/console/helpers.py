"""Console test helpers: members with a role, logged in."""

from django.contrib.auth import get_user_model
from django.test import Client

from campaigns.models import Advertiser, Membership, Role


def member(advertiser: Advertiser, role: str = Role.MANAGER, name: str = "") -> Client:
    user = get_user_model().objects.create_user(
        name or f"{role}-{advertiser.pk}", password="pw", email=f"{role}@example.test"
    )
    Membership.objects.create(user=user, advertiser=advertiser, role=role)
    client = Client()
    client.force_login(user)
    return client
