"""The integrator API as integrators use it: tokens, errors, idempotency, ETags, roles."""

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from adsplatform.api.throttling import TokenRateThrottle
from campaigns.models import ApiToken, AuditEntry, Campaign, Membership, Role
from tests.factories import make_advertiser, make_campaign, make_creative, make_line_item

pytestmark = pytest.mark.django_db


def member(advertiser: Any, role: Role = Role.MANAGER, name: str = "") -> APIClient:
    user = get_user_model().objects.create_user(name or f"{role}-{advertiser.pk}")
    Membership.objects.create(user=user, advertiser=advertiser, role=role)
    _, key = ApiToken.issue(user, "test")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def campaign_body(org: Any, **overrides: Any) -> dict[str, Any]:
    start = timezone.now() + timedelta(days=1)
    return {
        "organisation": org.pk,
        "name": "Winter sale",
        "start_at": start.isoformat(),
        "end_at": (start + timedelta(days=30)).isoformat(),
        "daily_budget": "100.00",
        "lifetime_budget": "2000.00",
        "priority_tier": "guaranteed",
        **overrides,
    }


def test_a_manager_creates_a_campaign_and_line_item_with_a_token() -> None:
    org = make_advertiser()
    api = member(org)
    creative = make_creative(org)

    campaign = api.post("/api/v1/campaigns/", campaign_body(org), format="json")
    line_item = api.post(
        "/api/v1/line-items/",
        {
            "campaign": campaign.json()["id"], "name": "Mobile EU", "bid": "3.5000",
            "sizes": ["300x250"], "countries": ["DE", "FR"], "device_types": [4, 5],
            "frequency_caps": [{"count": 3, "period": "day"}],
            "dayparts": [{"days": [0, 1, 2, 3, 4], "start": "07:00", "end": "10:00"}],
            "categories": ["IAB7", "IAB7-39"],
        },
        format="json",
    )  # fmt: skip
    assigned = api.post(
        "/api/v1/line-item-creatives/",
        {"line_item": line_item.json()["id"], "creative": creative.pk, "weight": 3},
        format="json",
    )
    activated = api.post(f"/api/v1/campaigns/{campaign.json()['id']}/activate/")

    assert campaign.status_code == 201
    assert campaign.json()["status"] == "draft"
    assert campaign.json()["daily_budget"] == "100.0000"
    assert line_item.status_code == 201, line_item.json()
    assert assigned.status_code == 201
    assert activated.json()["status"] == "active"
    detail = api.get(f"/api/v1/line-items/{line_item.json()['id']}/").json()
    assert detail["creatives"] == [{"creative": creative.pk, "weight": 3}]
    history = api.get(
        "/api/v1/audit-log/", {"object_type": "campaign", "object_id": campaign.json()["id"]}
    ).json()
    assert [e["action"] for e in history["results"]] == ["status", "create"]
    assert history["results"][0]["changes"] == {"status": ["draft", "active"]}
    assert history["results"][0]["actor"] == f"manager-{org.pk}"


@pytest.mark.parametrize(
    ("overrides", "path", "message"),
    [
        ({"end_at": "2020-01-01T00:00:00Z"}, "end_at", "The end must be after the start."),
        ({"daily_budget": "5000"}, "daily_budget", "cannot exceed the lifetime budget"),
        ({"daily_budget": "-1"}, "daily_budget", "greater than or equal to 0.0001"),
        ({"currency": "XYZ"}, "currency", "Unknown ISO 4217 currency: XYZ."),
        ({"goal_type": "clicks"}, "goal_target", "A clicks goal needs a target."),
        ({"priority_tier": "vip"}, "priority_tier", '"vip" is not a valid choice.'),
    ],
)
def test_invalid_campaigns_get_one_error_shape_with_field_paths(
    overrides: dict[str, Any], path: str, message: str
) -> None:
    org = make_advertiser()

    response = member(org).post(
        "/api/v1/campaigns/", campaign_body(org, **overrides), format="json"
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["status"], error["code"]) == (400, "invalid")
    assert [f["path"] for f in error["fields"]] == [path]
    assert message in error["fields"][0]["message"]
    assert Campaign.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "path", "message"),
    [
        ({"countries": ["XX"]}, "countries", "Unknown ISO 3166-1 alpha-2 country code: XX."),
        ({"regions": ["US-ZZ"]}, "regions", "Unknown ISO 3166-2 region code: US-ZZ."),
        ({"device_types": [9]}, "device_types", "Unknown OpenRTB device type: 9"),
        ({"sizes": ["300*250"]}, "sizes", "Sizes must look like 300x250; not 300*250."),
        ({"bid_type": "cpc"}, "click_url", "A CPC line item needs a click URL."),
        ({"frequency_caps": [{"count": 0, "period": "day"}]}, "frequency_caps", "at least 1"),
        ({"bid_strategy": "dynamic_down", "min_bid": "9"}, "min_bid", "must be below the bid"),
        ({"categories": ["IAB99"]}, "categories", "Unknown IAB content category: IAB99"),
    ],
)
def test_invalid_line_items_name_the_field(body: dict[str, Any], path: str, message: str) -> None:
    campaign = make_campaign()
    api = member(campaign.advertiser)

    response = api.post(
        "/api/v1/line-items/",
        {"campaign": campaign.pk, "name": "x", "bid": "2", "sizes": ["300x250"], **body},
        format="json",
    )

    assert response.status_code == 400, response.json()
    [field] = response.json()["error"]["fields"]
    assert field["path"] == path
    assert message in field["message"]


def test_a_retried_create_with_the_same_idempotency_key_makes_one_campaign() -> None:
    org = make_advertiser()
    api = member(org)
    body = campaign_body(org)

    first = api.post("/api/v1/campaigns/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = api.post("/api/v1/campaigns/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    other = api.post(
        "/api/v1/campaigns/", {**body, "name": "Other"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert other.status_code == 422
    assert Campaign.objects.count() == 1


def test_a_stale_if_match_is_refused_so_editors_do_not_overwrite_each_other() -> None:
    campaign = make_campaign()
    api = member(campaign.advertiser)
    url = f"/api/v1/campaigns/{campaign.pk}/"
    etag = api.get(url).headers["ETag"]

    first = api.patch(url, {"name": "Alice's"}, format="json", HTTP_IF_MATCH=etag)
    second = api.patch(url, {"name": "Bob's"}, format="json", HTTP_IF_MATCH=etag)

    assert first.status_code == 200
    assert first.headers["ETag"] != etag
    assert second.status_code == 412
    assert second.json()["error"]["code"] == "precondition_failed"
    campaign.refresh_from_db()
    assert campaign.name == "Alice's"


def test_roles_analysts_read_managers_write_admins_manage_members() -> None:
    campaign = make_campaign()
    org = campaign.advertiser
    analyst = member(org, Role.ANALYST)
    manager = member(org, Role.MANAGER)
    admin = member(org, Role.ADMIN)
    get_user_model().objects.create_user("newcomer")
    url = f"/api/v1/campaigns/{campaign.pk}/"

    assert analyst.get(url).status_code == 200
    assert analyst.patch(url, {"name": "x"}, format="json").status_code == 403
    assert analyst.post("/api/v1/campaigns/", campaign_body(org), format="json").status_code == 400
    assert manager.patch(url, {"name": "y"}, format="json").status_code == 200
    join = {"organisation": org.pk, "username": "newcomer", "role": "analyst"}
    assert manager.post("/api/v1/members/", join, format="json").status_code == 400
    assert admin.post("/api/v1/members/", join, format="json").status_code == 201
    assert analyst.delete(url).status_code == 405  # nothing is deleted; archive instead


def test_an_outsider_gets_404_for_every_object_of_another_organisation() -> None:
    campaign = make_campaign()
    org = campaign.advertiser
    line_item = make_line_item(campaign, "2.00")
    insider = member(org, Role.ADMIN)
    deal = insider.post(
        "/api/v1/deals/", {"organisation": org.pk, "deal_id": "D-1", "name": "PMP"}, format="json"
    ).json()
    objects = {
        "organisations": org.pk,
        "members": Membership.objects.filter(advertiser=org).first().pk,  # type: ignore[union-attr]
        "campaigns": campaign.pk,
        "line-items": line_item.pk,
        "line-item-creatives": line_item.assignments.first().pk,  # type: ignore[union-attr]
        "deals": deal["id"],
        "audit-log": AuditEntry.objects.filter(advertiser=org).first().pk,  # type: ignore[union-attr]
    }
    outsider = member(make_advertiser(), Role.ADMIN, name="outsider")

    for prefix, pk in objects.items():
        listing = outsider.get(f"/api/v1/{prefix}/").json()
        assert pk not in [row["id"] for row in listing["results"]], prefix
        assert outsider.get(f"/api/v1/{prefix}/{pk}/").status_code == 404, prefix
        assert outsider.patch(f"/api/v1/{prefix}/{pk}/", {}, format="json").status_code in (
            404, 405,
        ), prefix  # fmt: skip
    for action in ("activate", "pause", "archive"):
        assert outsider.post(f"/api/v1/campaigns/{campaign.pk}/{action}/").status_code == 404
        assert outsider.post(f"/api/v1/line-items/{line_item.pk}/{action}/").status_code == 404
    sneaky = outsider.post(
        "/api/v1/line-items/",
        {"campaign": campaign.pk, "name": "x", "bid": "1", "sizes": ["300x250"]},
        format="json",
    )
    assert sneaky.status_code == 400
    assert sneaky.json()["error"]["fields"][0]["path"] == "campaign"
    assert outsider.get(f"/api/v1/reports/hourly/?campaign={campaign.pk}").json()["count"] == 0


def test_archived_campaigns_never_come_back() -> None:
    campaign = make_campaign()
    api = member(campaign.advertiser)

    assert api.post(f"/api/v1/campaigns/{campaign.pk}/archive/").json()["status"] == "archived"
    response = api.post(f"/api/v1/campaigns/{campaign.pk}/activate/")

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == [
        {"path": "status", "message": "Archived campaigns cannot become active."}
    ]


def test_revoked_tokens_and_rate_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    org = make_advertiser()
    api = member(org)
    token = ApiToken.objects.get()
    monkeypatch.setattr(TokenRateThrottle, "THROTTLE_RATES", {"token": "3/min"})

    statuses = [api.get("/api/v1/campaigns/").status_code for _ in range(4)]
    token.revoked_at = timezone.now()
    token.save()
    revoked = api.get("/api/v1/campaigns/")

    assert statuses == [200, 200, 200, 429]
    assert revoked.status_code == 401
    assert revoked.json()["error"]["message"] == "The token is unknown or revoked."


def test_lists_paginate_filter_and_order() -> None:
    org = make_advertiser()
    for budget in ("10", "30", "20"):
        make_campaign(org, daily_budget=Decimal(budget))
    make_campaign(org, active=False)
    api = member(org)

    page = api.get("/api/v1/campaigns/", {"status": "active", "ordering": "-daily_budget"}).json()

    assert page["count"] == 3
    assert [c["daily_budget"] for c in page["results"]] == ["30.0000", "20.0000", "10.0000"]
    assert {"next", "previous"} <= set(page)


def test_the_schema_and_docs_are_served() -> None:
    api = member(make_advertiser())

    schema = api.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    docs = api.get("/api/v1/docs/")

    assert "/api/v1/campaigns/{id}/activate/" in schema["paths"]
    assert schema["components"]["securitySchemes"]["apiToken"]["scheme"] == "bearer"
    assert docs.status_code == 200


def test_nul_characters_are_refused_before_they_reach_the_database() -> None:
    org = make_advertiser()
    api = member(org, Role.ADMIN)

    by_query = api.get("/api/v1/campaigns/", {"search": "a\x00b"})
    by_body = api.post(
        "/api/v1/members/", {"organisation": org.pk, "username": "x\x00", "role": "analyst"},
        format="json",
    )  # fmt: skip

    assert (by_query.status_code, by_body.status_code) == (400, 400)
    assert by_body.json()["error"]["message"] == "The request contains a NUL character (\\u0000)."
