"""The measurement report and its API over ingested events whose totals are known: every
metric, currencies, tenancy, bad input, the buyer latency percentiles and the budget table."""

from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from redis import Redis

from campaigns.models import FxRateSet
from reporting.ingest import ingest_events
from reporting.models import BuyerLatencyHourly, DemandHourly
from serving.latency import bucket_of, bucket_value
from tests.reporting.measurement_data import World, known_events, login, make_world, push, yesterday

pytestmark = pytest.mark.django_db

V1 = {
    "requests": 11, "wins": 9, "own_wins": 7, "buyer_wins": 2, "bids": 5, "impressions": 8,
    "clicks": 1, "errors": 1, "viewable": 3, "measurable": 4, "video_start": 2,
    "first_quartile": 2, "midpoint": 1, "third_quartile": 1, "complete": 1,
    "fill_rate": "81.82", "our_win_rate": "63.64", "buyer_win_rate": "40.00", "spend": "0.13",
    "rpm": "11.82", "ecpm": "16.25", "ctr": "12.50", "error_rate": "12.50",
    "viewability": "75.00", "completion_rate": "50.00", "first_quartile_rate": "100.00",
    "midpoint_rate": "50.00", "third_quartile_rate": "50.00", "unconverted": {"CHF": "0.10"},
}  # fmt: skip
OPENRTB = {
    "requests": 4, "wins": 2, "own_wins": 2, "buyer_wins": 0, "bids": 0, "impressions": 2,
    "clicks": 0, "fill_rate": "50.00", "our_win_rate": "50.00", "buyer_win_rate": None,
    "spend": "1.10", "rpm": "275.00", "ecpm": "550.00", "ctr": "0.00", "viewability": None,
    "completion_rate": None, "unconverted": {},
}  # fmt: skip


@pytest.fixture
def world(redis_client: Redis) -> World:
    w = make_world()
    push(redis_client, known_events(w))
    ingest_events()
    return w


def api(client: Client, query: str, path: str = "measurement") -> Any:
    response = client.get(f"/api/v1/reports/{path}/?{query}")
    assert response.status_code == 200, response.content
    return response.json()


def subset(row: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in expected}


def test_staff_see_every_metric_by_door_converted_at_the_days_rate(world: World) -> None:
    ops = login("ops", staff=True)

    body = api(ops, f"group_by=door&currency=USD&{yesterday(world)}")

    rows = {r["key"]: r for r in body["results"]}
    assert subset(rows["v1"], V1) == V1
    assert subset(rows["openrtb"], OPENRTB) == OPENRTB
    assert rows["v1"]["qps"] == "0.000"  # 11 requests over a day
    assert body["count"] == 2
    assert body["totals"]["requests"] == 15
    assert body["totals"]["spend"] == "1.23"
    assert body["totals"]["unconverted"] == {"CHF": "0.10"}
    assert f"reference rates of each day ({world.day})" in body["fx_note"]
    assert body["fx_note"].startswith("Amounts in USD.")
    assert any("by error code are in their own table" in n for n in body["notes"])


def test_groupings_add_up_to_the_same_totals(world: World) -> None:
    ops = login("ops", staff=True)
    for group in ("day", "hour", "campaign", "line_item", "placement", "publisher", "buyer"):
        body = api(ops, f"group_by={group}&currency=USD&{yesterday(world)}")
        assert sum(r["requests"] for r in body["results"]) == 15, group
        assert sum(r["impressions"] for r in body["results"]) == 10, group
        assert body["totals"]["spend"] == "1.23", group
    hours = api(ops, f"group_by=hour&{yesterday(world)}")["results"]
    assert [(h["label"][11:], h["requests"], h["qps"]) for h in hours] == [("10:00", 15, "0.004")]
    buyers = {r["key"]: r for r in api(ops, f"group_by=buyer&{yesterday(world)}")["results"]}
    assert (buyers[world.buyer7.pk]["bids"], buyers[world.buyer7.pk]["wins"]) == (4, 2)
    assert buyers[world.buyer7.pk]["buyer_win_rate"] == "50.00"
    assert buyers[world.buyer8.pk]["buyer_win_rate"] == "0.00"
    assert buyers[world.buyer7.pk]["label"] == "seven"
    publishers = api(ops, f"group_by=publisher&{yesterday(world)}")["results"]
    assert {r["key"]: r["requests"] for r in publishers} == {
        world.p1.publisher_id: 10,
        world.p2.publisher_id: 5,
    }
    placements = {
        r["key"]: r for r in api(ops, f"group_by=placement&{yesterday(world)}")["results"]
    }
    assert placements[world.p1.pk]["rpm"] == "13.00"  # 0.13 USD over 10 requests
    assert placements[world.p1.pk]["ecpm"] == "18.57"  # over 7 impressions


def test_an_advertiser_sees_only_its_organisation_in_its_currency(world: World) -> None:
    acme, beta = login("acme", world.acme), login("beta", world.beta)

    mine = api(acme, f"group_by=campaign&{yesterday(world)}")
    theirs = api(beta, f"group_by=door&{yesterday(world)}")
    converted = api(beta, f"group_by=door&currency=USD&{yesterday(world)}")

    assert [(r["key"], r["requests"], r["impressions"], r["spend"]) for r in mine["results"]] == [
        (world.acme_li.campaign_id, 6, 5, "0.10")
    ]
    assert mine["currency"] == "USD"
    assert [(r["key"], r["spend"]) for r in theirs["results"]] == [("openrtb", "1.00")]
    assert theirs["currency"] == "EUR"
    assert theirs["fx_note"].endswith("every amount is in the report currency.")
    assert converted["results"][0]["spend"] == "1.10"
    # Another organisation's campaign or line item is not found; buyers are staff-only.
    assert (
        acme.get(f"/api/v1/reports/measurement/?campaign={world.beta_li.campaign_id}").status_code
        == 404
    )
    assert acme.get(f"/api/v1/reports/measurement/?line_item={world.beta_li.pk}").status_code == 404
    assert acme.get("/api/v1/reports/measurement/?group_by=buyer").status_code == 400
    assert acme.get("/api/v1/reports/buyer-latency/").status_code == 403
    page = acme.get(f"/reports/measurement/?group_by=campaign&{yesterday(world)}").content.decode()
    assert world.acme_li.campaign.name in page
    assert world.beta_li.campaign.name not in page
    assert 'data-table="latency"' not in page


def test_without_a_reference_set_the_configured_rates_convert(world: World) -> None:
    FxRateSet.objects.all().delete()
    beta = login("beta", world.beta)

    body = api(beta, f"group_by=door&currency=USD&{yesterday(world)}")

    assert body["results"][0]["spend"] == "1.08"  # FX_RATES EUR=1.08
    assert "configured FX_RATES" in body["fx_note"]


@pytest.mark.parametrize(
    "query, field",
    [
        ("group_by=region", "group_by"),
        ("range=fortnight", "range"),
        ("range=custom&from=2026-13-01&to=2026-12-01", "from"),
        ("currency=XYZ", "currency"),
        ("currency=eu", "currency"),
        ("page=0", "page"),
        ("page=abc", "page"),
        ("page=9", "page"),
        ("page_size=5000", "page_size"),
        ("campaign=abc", "campaign"),
        ("line_item=1x", "line_item"),
    ],
)
def test_bad_input_is_a_400_naming_the_parameter(query: str, field: str) -> None:
    ops = login("ops", staff=True)

    response = ops.get(f"/api/v1/reports/measurement/?{query}")

    assert response.status_code == 400, response.content
    [problem] = response.json()["error"]["fields"]
    assert problem["path"] == field
    assert problem["message"]
    page = ops.get(f"/reports/measurement/?{query}")
    if field not in ("page", "page_size"):  # the page clamps its page numbers
        assert page.status_code == 400
        assert f'data-error="{field}"' in page.content.decode()


def test_buyer_latency_percentiles_merge_the_hours(world: World, redis_client: Redis) -> None:
    ops = login("ops", staff=True)

    body = api(ops, yesterday(world), path="buyer-latency")
    by_hour = api(ops, f"group_by=hour&{yesterday(world)}", path="buyer-latency")

    seven, eight = body["results"]
    twenty = f"{bucket_value(bucket_of(20.0)):.1f}"
    assert subset(seven, {"buyer": "", "calls": 0, "timeouts": 0}) == {
        "buyer": "seven", "calls": 100, "timeouts": 3,
    }  # fmt: skip
    assert (seven["p50_ms"], seven["p95_ms"], seven["p99_ms"]) == (twenty, twenty, "timeout")
    assert seven["timeout_rate"] == "3.00"
    hundred = f"{bucket_value(bucket_of(100.0)):.1f}"
    assert (eight["p50_ms"], eight["p99_ms"], eight["calls"]) == (hundred, hundred, 10)
    assert [r["hour"][11:16] for r in by_hour["results"]] == ["10:00", "10:00"]
    assert BuyerLatencyHourly.objects.count() == 3
    page = ops.get(f"/reports/measurement/?{yesterday(world)}").content.decode()
    assert 'data-metric="p99">timeout<' in page
    assert f'data-metric="p50">{twenty}<' in page


def test_every_campaign_in_one_budget_table(world: World) -> None:
    ops = login("ops", staff=True)

    rows = {r["campaign_id"]: r for r in api(ops, "", path="budgets")["results"]}

    acme = rows[world.acme_li.campaign_id]
    assert subset(acme, {"spend_today": 0, "today_utilisation": 0, "spend_lifetime": 0}) == {
        "spend_today": "0.02", "today_utilisation": "2.00", "spend_lifetime": "0.12",
    }  # fmt: skip
    assert acme["lifetime_utilisation"] == "1.20"
    beta = rows[world.beta_li.campaign_id]
    assert (beta["currency"], beta["spend_lifetime"], beta["lifetime_utilisation"]) == (
        "EUR", "1.00", "10.00",
    )  # fmt: skip
    assert len(rows) == 3
    assert [
        r["campaign_id"] for r in api(login("a2", world.acme), "", path="budgets")["results"]
    ] == [world.acme_li.campaign_id]


def test_the_report_runs_a_fixed_number_of_queries(
    world: World, django_assert_max_num_queries: Any
) -> None:
    ops = login("ops", staff=True)
    with django_assert_max_num_queries(14):
        api(ops, f"group_by=line_item&currency=USD&{yesterday(world)}")


def test_rows_keep_the_campaign_currency_and_the_door(world: World) -> None:
    rows = DemandHourly.objects.filter(line_item_id__in=[world.beta_li.pk, world.gamma_li.pk])
    assert {(r.currency, r.door) for r in rows} == {("EUR", "openrtb"), ("CHF", "v1")}
    assert settings.SERVING_CURRENCY == "USD"
