"""The conversions API: keys made by organisation admins (secret shown once), conversions
listed per organisation, paginated, without pseudonyms."""

import pytest

from campaigns.models import Role
from reporting.conversions.attribution import attribute_conversions
from reporting.conversions.models import ConversionKey
from tests.campaigns.test_api import member
from tests.reporting.conversions.helpers import make_book, pixel, postback

pytestmark = pytest.mark.django_db


def test_an_admin_makes_a_key_sees_its_secret_once_and_revokes_it() -> None:
    book = make_book()
    admin = member(book.advertiser, Role.ADMIN)
    made = admin.post(
        "/api/v1/conversion-keys/",
        {"organisation": book.advertiser.pk, "name": "orders"},
        format="json",
    )
    assert made.status_code == 201
    body = made.json()
    assert body["key_id"].startswith("ck_") and body["secret"]
    listed = admin.get("/api/v1/conversion-keys/").json()
    assert {k["key_id"] for k in listed["results"]} == {book.key.key_id, body["key_id"]}
    assert all("secret" not in k for k in listed["results"])

    key = ConversionKey.objects.get(key_id=body["key_id"])
    assert postback(key, {"order_id": "K-1"}).status_code == 202
    assert admin.post(f"/api/v1/conversion-keys/{key.pk}/revoke/").status_code == 200
    refused = postback(key, {"order_id": "K-2"})
    assert refused.status_code == 401
    assert "revoked" in refused.json()["error"]["message"]


def test_managers_cannot_make_keys_and_outsiders_see_none() -> None:
    book, other = make_book(), make_book()
    manager = member(book.advertiser, Role.MANAGER)
    response = manager.post(
        "/api/v1/conversion-keys/",
        {"organisation": book.advertiser.pk, "name": "orders"},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["fields"][0]["path"] == "organisation"
    outsider = member(other.advertiser, Role.ADMIN)
    assert outsider.get(f"/api/v1/conversion-keys/{book.key.pk}/").status_code == 404


def test_conversions_are_listed_per_organisation_without_pseudonyms() -> None:
    book, other = make_book(), make_book()
    for n in range(3):
        pixel(f"adv={book.advertiser.pk}&order=L-{n}&uid=someone")
    pixel(f"adv={other.advertiser.pk}&order=O-1")
    attribute_conversions()
    mine = member(book.advertiser, Role.ANALYST).get("/api/v1/conversions/?page=1").json()
    assert mine["count"] == 3
    assert {c["order_id"] for c in mine["results"]} == {"L-0", "L-1", "L-2"}
    assert all("pseudonym" not in c for c in mine["results"])
    assert mine["results"][0]["attribution"] == "none"
