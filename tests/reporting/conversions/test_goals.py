"""Target CPA and target ROAS goals and the attribution windows, through the API and the
bulksheet: valid ones are kept, invalid ones are a 400 (a row error) naming the field."""

from decimal import Decimal
from typing import Any

import pytest

from campaigns.models import Campaign
from tests.bulk.helpers import csv_bytes, dry_run, new_campaign, upload_and_apply
from tests.campaigns.test_api import campaign_body, member
from tests.factories import make_advertiser

pytestmark = pytest.mark.django_db


def test_a_target_cpa_campaign_with_its_windows_through_the_api() -> None:
    org = make_advertiser()
    body = campaign_body(
        org, goal_type="target_cpa", goal_target="12.50", post_click_days=7, post_view_days=0
    )
    response = member(org).post("/api/v1/campaigns/", body, format="json")
    assert response.status_code == 201, response.json()
    created = response.json()
    assert (created["goal_type"], created["post_click_days"], created["post_view_days"]) == (
        "target_cpa", 7, 0,
    )  # fmt: skip
    defaults = member(org, name="second").post(
        "/api/v1/campaigns/", campaign_body(org), format="json"
    )
    assert (defaults.json()["post_click_days"], defaults.json()["post_view_days"]) == (30, 1)


@pytest.mark.parametrize(
    ("overrides", "path", "message"),
    [
        ({"goal_type": "target_roas"}, "goal_target", "needs a target"),
        ({"goal_type": "target_roas", "goal_target": "5000"}, "goal_target", "at most 1000"),
        (
            {"goal_type": "target_cpa", "goal_target": "5", "post_click_days": 0,
             "post_view_days": 0},
            "goal_type", "needs conversions",
        ),
        ({"goal_type": "target_cpm", "goal_target": "5"}, "goal_type", "not a valid choice"),
        ({"post_click_days": 91}, "post_click_days", "less than or equal to 90"),
        ({"post_view_days": 31}, "post_view_days", "less than or equal to 30"),
        ({"post_view_days": -1}, "post_view_days", "greater than or equal to 0"),
    ],
)  # fmt: skip
def test_bad_goals_and_windows_are_a_400_naming_the_field(
    overrides: dict[str, Any], path: str, message: str
) -> None:
    org = make_advertiser()
    body = campaign_body(org, **overrides)
    response = member(org).post("/api/v1/campaigns/", body, format="json")
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert any(f["path"] == path and message in f["message"] for f in fields), fields


def test_the_bulksheet_sets_a_roas_goal_and_windows_and_names_a_bad_cell() -> None:
    org = make_advertiser()
    cells = {"Goal Type": "target_roas", "Goal Target": "4", "Post-Click Days": "14",
             "Post-View Days": "2"}  # fmt: skip
    upload_and_apply(org, csv_bytes(new_campaign(cells)))
    campaign = Campaign.objects.get(advertiser=org)
    assert (campaign.goal_type, campaign.goal_target) == ("target_roas", Decimal("4"))
    assert (campaign.post_click_days, campaign.post_view_days) == (14, 2)

    bad = {"Goal Type": "target_cpa", "Goal Target": "3", "Post-Click Days": "0",
           "Post-View Days": "0"}  # fmt: skip
    upload, _ = dry_run(org, csv_bytes(new_campaign({**bad, "Name": "Other"})))
    assert [(e["column"], e["message"][:35]) for e in upload.errors] == [
        ("Goal Type", "A target_cpa goal needs conversions")
    ]
    upload, _ = dry_run(org, csv_bytes(new_campaign({"Post-View Days": "soon"})))
    assert [e["column"] for e in upload.errors] == ["Post-View Days"]
