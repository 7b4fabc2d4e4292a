"""Clients and request bodies shared by the creative tests."""

from typing import Any

from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from campaigns.models import Advertiser, ApiToken, Membership, Role
from creatives import placeholders as ph

# Realistic serving URLs: signed, with & in the query and an OpenRTB price macro.
SERVED = {
    "%%IMP_URL%%": "https://ads.example.com/v1/imp/eyJrIjoxfQ.c2ln?src=ssp&p=${AUCTION_PRICE}",
    "%%CLICK_URL%%": "https://ads.example.com/v1/click/eyJrIjoyfQ.c2ln?src=ssp&r=1",
    "%%ERROR_URL%%": "https://ads.example.com/v1/err/eyJrIjozfQ.c2ln",
    "%%EVENT_URL%%": "https://ads.example.com/v1/evt/eyJrIjo0fQ.c2ln",
    "%%AD_SERVING_ID%%": "req-7f3a-0",
    "%%CACHEBUSTER%%": "83412",
    ph.VIEWABILITY: ph.VIEWABILITY_ATTR,
}


def served(markup: str) -> str:
    """The markup as serving fills it in."""
    for placeholder, value in SERVED.items():
        markup = markup.replace(placeholder, value)
    return markup


def member_api(advertiser: Advertiser, role: Role = Role.MANAGER, name: str = "") -> APIClient:
    user = get_user_model().objects.create_user(name or f"{role}-{advertiser.pk}")
    Membership.objects.create(user=user, advertiser=advertiser, role=role)
    return _token_client(user)


def staff_api(name: str = "reviewer") -> APIClient:
    user = get_user_model().objects.create_user(name, is_staff=True)
    return _token_client(user)


def _token_client(user: Any) -> APIClient:
    _, key = ApiToken.issue(user, "test")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def uploaded(
    data: bytes, name: str, content_type: str = "application/octet-stream"
) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


def field_errors(response: Any) -> list[tuple[str, str]]:
    assert response.status_code == 400, response.content
    return [(f["path"], f["message"]) for f in response.json()["error"]["fields"]]
