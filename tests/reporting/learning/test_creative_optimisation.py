"""Creative optimisation: a line item set to "optimise" draws its creatives by Thompson
sampling on the rollups' clicks and impressions (shares computed by the snapshot build), and
every draw's propensity reaches the telemetry files; "weighted" keeps its fixed weights."""

from collections import Counter
from datetime import timedelta
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.utils import timezone
from redis import Redis
from rest_framework.test import APIClient

from campaigns import services
from campaigns.models import ApiToken, CreativeRotation, LineItemCreative, Membership, Role
from campaigns.snapshot import publish_snapshot, read_snapshot, redis_keys
from campaigns.snapshot_learning import SHARE_UNITS, thompson_probabilities
from reporting.models import CreativeHourly
from reporting.telemetry.writer import write_telemetry
from serving.app import ServingApp
from tests.bulk.helpers import csv_bytes, dry_run, new_line_item, upload_and_apply
from tests.factories import make_campaign, make_creative, make_line_item, make_placement
from tests.reporting.telemetry.test_writer import query
from tests.serving.test_app import ad_body, with_client
from tests.serving.test_serving_path import stream_events

pytestmark = pytest.mark.django_db

# (impressions, clicks) of three creatives over the last days: the first is clicked most.
FIGURES = [(2000, 80), (2000, 40), (2000, 38)]


def test_thompson_probabilities_are_seeded_sum_to_one_and_favour_the_clicked() -> None:
    prior = (0.2, 99.8)
    first = thompson_probabilities(FIGURES, prior, 4000, [7, 1])
    again = thompson_probabilities(FIGURES, prior, 4000, [7, 1])
    unseen = thompson_probabilities([(0, 0), (0, 0)], prior, 4000, [7, 2])

    assert first == again
    assert sum(first) == pytest.approx(1.0)
    assert first[0] > 0.99
    assert unseen[0] == pytest.approx(0.5, abs=0.03)  # nothing known: a coin toss


@pytest.fixture
def optimised(redis_client: Redis) -> dict[str, Any]:
    placement = make_placement()
    campaign = make_campaign()
    li = make_line_item(campaign, "2.00")
    for _ in range(2):
        creative = make_creative(campaign.advertiser)
        LineItemCreative.objects.create(line_item=li, creative=creative, weight=5)
    services.update_line_item(li, creative_rotation=CreativeRotation.OPTIMISE)
    creatives = list(li.assignments.order_by("creative_id").values_list("creative_id", flat=True))
    hour = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    for cr, (imps, clicks) in zip(creatives, FIGURES, strict=True):
        CreativeHourly.objects.create(
            hour=hour, line_item_id=li.pk, creative_id=cr, campaign_id=campaign.pk,
            advertiser_id=campaign.advertiser_id, impressions=imps, clicks=clicks,
        )  # fmt: skip
    version = publish_snapshot()
    snapshot = read_snapshot(redis_client, redis_keys(), version)
    assert snapshot is not None
    [snap] = snapshot.line_items
    return {"placement": placement, "li": li, "creatives": creatives, "snap": snap}


def test_the_build_publishes_thompson_shares_with_an_exploration_floor(
    optimised: dict[str, Any],
) -> None:
    snap = optimised["snap"]
    shares = [w / sum(snap.creative_weights) for w in snap.creative_weights]

    assert snap.creative_rotation == "optimise"
    assert snap.creative_ids == optimised["creatives"]
    assert abs(sum(snap.creative_weights) - SHARE_UNITS) <= len(shares)
    assert sum(shares) == pytest.approx(1.0)
    floor = settings.LEARNING_EXPLORATION / 3
    assert min(shares) >= floor - 1e-6
    assert shares[0] > 0.9  # 1 - exploration, give or take the posterior's doubt
    # The same figures give the same shares: no snapshot change without news.
    again = publish_snapshot()
    assert read_snapshot_weights(again) == snap.creative_weights


def read_snapshot_weights(version: int) -> list[int]:
    from campaigns.snapshot import redis_client

    snapshot = read_snapshot(redis_client(), redis_keys(), version)
    assert snapshot is not None
    return snapshot.line_items[0].creative_weights


def test_serving_draws_by_the_shares_and_telemetry_logs_each_draws_propensity(
    optimised: dict[str, Any], redis_client: Redis
) -> None:
    snap = optimised["snap"]
    total = sum(snap.creative_weights)
    expected = {
        cr: w / total for cr, w in zip(snap.creative_ids, snap.creative_weights, strict=True)
    }
    rounds = 300

    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> list[int]:
        body = ad_body(optimised["placement"].key)
        return [(await client.post("/v1/ad", json=body)).status_code for _ in range(rounds)]

    assert with_client(scenario) == [200] * rounds
    requests = [e for e in stream_events(redis_client) if e.t == "req"]
    write_telemetry()
    rows = query("SELECT creative_id, propensity FROM read_parquet('ROOT/decisions/*/*/*.parquet')")

    assert len(requests) == rounds
    assert len(rows) == rounds
    assert all(p == expected[cr] for cr, p in rows)  # the exact probability it drew with
    assert sum(expected.values()) == pytest.approx(1.0)
    shown = Counter(cr for cr, _ in rows)
    best, *others = optimised["creatives"]
    assert shown[best] > max(shown[o] for o in others)
    assert all(shown[o] > 0 for o in others)  # exploration keeps them in the logs


def test_a_weighted_line_item_keeps_its_fixed_weights(redis_client: Redis) -> None:
    make_placement()
    campaign = make_campaign()
    li = make_line_item(campaign, "2.00")
    LineItemCreative.objects.create(
        line_item=li, creative=make_creative(campaign.advertiser), weight=3
    )
    snapshot = read_snapshot(redis_client, redis_keys(), publish_snapshot())
    assert snapshot is not None

    [snap] = snapshot.line_items
    assert (snap.creative_rotation, snap.creative_weights) == ("weighted", [1, 3])


def test_the_api_sets_the_rotation_and_names_a_bad_one() -> None:
    campaign = make_campaign()
    li = make_line_item(campaign, "2.00")
    user = make_user_in(campaign.advertiser)
    _, key = ApiToken.issue(user, "test")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    url = f"/api/v1/line-items/{li.pk}/"

    good = api.patch(url, {"creative_rotation": "optimise"}, format="json")
    bad = api.patch(url, {"creative_rotation": "random"}, format="json")

    assert good.status_code == 200, good.json()
    assert good.json()["creative_rotation"] == "optimise"
    assert bad.status_code == 400
    assert bad.json()["error"]["fields"] == [
        {"path": "creative_rotation", "message": '"random" is not a valid choice.'}
    ]
    li.refresh_from_db()
    assert li.creative_rotation == "optimise"


def make_user_in(advertiser: Any) -> Any:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(f"manager-{advertiser.pk}")
    Membership.objects.create(user=user, advertiser=advertiser, role=Role.MANAGER)
    return user


def test_a_bulksheet_sets_the_rotation_and_names_a_bad_one_per_row() -> None:
    campaign = make_campaign()
    good = csv_bytes(
        new_line_item({"Campaign Id": str(campaign.pk), "Creative Rotation": "Optimise"})
    )
    bad = csv_bytes(new_line_item({"Campaign Id": str(campaign.pk), "Creative Rotation": "best"}))

    failed, _ = dry_run(campaign.advertiser, bad)
    upload_and_apply(campaign.advertiser, good)

    assert [(e["row"], e["column"], e["message"]) for e in failed.errors] == [
        (2, "Creative Rotation", "Unknown creative rotation 'best' (use weighted, optimise).")
    ]
    assert list(campaign.line_items.values_list("creative_rotation", flat=True)) == ["optimise"]
