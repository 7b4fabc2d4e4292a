"""Issue 12 item 11 (API side): NUL characters and out-of-range datetimes are a 400 naming
the field, never a 500 from the database."""

from typing import Any

import pytest

from campaigns.models import Campaign, Role
from tests.campaigns.test_api import campaign_body, member
from tests.factories import make_advertiser

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "value",
    [
        "0001-01-01T00:00:00+05:00",  # before year 1 in UTC
        "9999-12-31T23:59:59-05:00",  # after year 9999 in UTC
        "10000-01-01T00:00:00Z",
    ],
)
def test_an_out_of_range_datetime_is_a_400_naming_the_field(value: str) -> None:
    org = make_advertiser()
    api = member(org, Role.MANAGER)

    response = api.post("/api/v1/campaigns/", campaign_body(org, start_at=value), format="json")

    assert response.status_code == 400, response.content
    assert [f["path"] for f in response.json()["error"]["fields"]] == ["start_at"]
    assert Campaign.objects.count() == 0


@pytest.mark.parametrize(
    ("start", "end"),
    [("0001-01-01T00:00:00Z", "0001-01-02T00:00:00Z"),
     ("9999-12-30T00:00:00Z", "9999-12-31T23:59:59Z"),
     ("2026-12-01T00:00:00Z", "9999-12-31T23:59:59.999999Z")],
)  # fmt: skip
def test_datetimes_at_the_edges_of_the_range_are_never_a_500(start: str, end: str) -> None:
    org = make_advertiser()
    api = member(org, Role.MANAGER)

    created = api.post(
        "/api/v1/campaigns/", campaign_body(org, start_at=start, end_at=end), format="json"
    )
    assert created.status_code in (201, 400), created.content
    if created.status_code == 201:
        pk = created.json()["id"]
        assert api.get(f"/api/v1/campaigns/{pk}/").status_code == 200
        assert api.get(f"/api/v1/campaigns/{pk}/pacing/").status_code < 500
        assert api.get("/api/v1/campaigns/").status_code == 200


def test_an_out_of_range_datetime_in_a_filter_is_a_400() -> None:
    org = make_advertiser()
    api = member(org, Role.MANAGER)

    response = api.get("/api/v1/campaigns/", {"start_at__gte": "0001-01-01T00:00:00+05:00"})

    assert response.status_code in (200, 400)


@pytest.mark.parametrize("field", ["name"])
def test_a_nul_in_a_json_body_is_a_400(field: str) -> None:
    org = make_advertiser()
    api = member(org, Role.MANAGER)
    body: dict[str, Any] = campaign_body(org, **{field: "Winter\x00sale"})

    response = api.post("/api/v1/campaigns/", body, format="json")

    assert response.status_code == 400
    assert "NUL" in response.json()["error"]["message"]
    assert Campaign.objects.count() == 0
