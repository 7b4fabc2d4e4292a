"""Events with known totals through the stream and the real Celery worker to the
measurement page and API: every number shown, in two currencies and two organisations."""

import json
import re
from typing import Any

import pytest
from redis import Redis

from serving.latency import bucket_of, bucket_value
from tests.reporting.measurement_data import ingest, known_events, login, make_world, yesterday
from tests.reporting.test_measurement import OPENRTB, V1


def page_rows(page: str, table: str) -> dict[str, dict[str, str]]:
    """A table's rows by their data key: metric name to the text shown."""
    body = page.split(f'data-table="{table}"', 1)[1].split("</table>", 1)[0]
    rows = {}
    for key, tr in re.findall(r'<tr data-\w+="([^"]+)">(.*?)</tr>', body, re.S):
        cells = re.findall(r'data-metric="(\w+)">(?:<b>)?([^<]*)<', tr)
        rows[key] = dict(cells)
    return rows


def shown(value: Any) -> str:
    """What the page shows for an API value: "-" for none."""
    return "-" if value is None else str(value)


@pytest.mark.django_db(transaction=True)
def test_known_events_reach_every_number_of_the_measurement_page_and_api(
    celery_worker: None, redis_client: Redis
) -> None:
    world = make_world()
    ingest(redis_client, known_events(world))
    ops = login("ops", staff=True)
    query = f"group_by=door&currency=USD&{yesterday(world)}"
    page = ops.get(f"/reports/measurement/?{query}").content.decode()
    api = ops.get(f"/api/v1/reports/measurement/?{query}").json()

    rows = page_rows(page, "measurement")
    for door, expected in (("v1", V1), ("openrtb", OPENRTB)):
        for name, value in expected.items():
            if name in rows[door]:
                assert rows[door][name] == shown(value), (door, name)
    assert rows["v1"]["spend"] == "0.13" and rows["openrtb"]["spend"] == "1.10"
    assert rows["total"]["requests"] == "15" and rows["total"]["spend"] == "1.23"
    assert rows["total"]["fill_rate"] == "73.33"  # 11 of 15
    # Every cell of the page is the API's value.
    by_key = {r["key"]: r for r in api["results"]}
    for key, cells in rows.items():
        source = api["totals"] if key == "total" else by_key[key]
        for name, text in cells.items():
            assert text == shown(source[name]), (key, name)
    assert "0.10" in api["totals"]["unconverted"]["CHF"]
    assert api["fx_note"] in page.replace("&#x27;", "'")
    chart = json.loads(
        page.split('id="measurement-chart-data"', 1)[1].split(">", 1)[1].split("<")[0]
    )
    assert len(chart["labels"]) == 24 and chart["labels"][10].endswith("10:00")
    assert (sum(chart["requests"]), chart["requests"][10], chart["wins"][10]) == (15, 15, 11)
    assert chart["impressions"][10] == 10

    budgets = page_rows(page, "budgets")
    acme = budgets[str(world.acme_li.campaign_id)]
    assert acme == {
        "spend_today": "0.02", "today_utilisation": "2.00",
        "spend_lifetime": "0.12", "lifetime_utilisation": "1.20",
    }  # fmt: skip
    assert budgets[str(world.beta_li.campaign_id)]["spend_lifetime"] == "1.00"
    assert budgets[str(world.gamma_li.campaign_id)]["spend_lifetime"] == "0.10"

    latency = page_rows(page, "latency")
    twenty = f"{bucket_value(bucket_of(20.0)):.1f}"
    hundred = f"{bucket_value(bucket_of(100.0)):.1f}"
    assert latency[str(world.buyer7.pk)] == {"p50": twenty, "p95": twenty, "p99": "timeout"}
    assert latency[str(world.buyer8.pk)] == {"p50": hundred, "p95": hundred, "p99": hundred}

    # Beta sees its own EUR numbers only, on the page and in the API.
    beta = login("beta", world.beta)
    mine = page_rows(
        beta.get(f"/reports/measurement/?group_by=door&{yesterday(world)}").content.decode(),
        "measurement",
    )
    assert set(mine) == {"openrtb", "total"}
    assert (mine["openrtb"]["requests"], mine["openrtb"]["spend"], mine["openrtb"]["ecpm"]) == (
        "2", "1.00", "500.00",
    )  # fmt: skip
    assert beta.get("/api/v1/reports/budgets/").json()["count"] == 1
