"""Operations: the serving processes' figures through Redis into Prometheus' /metrics, the
Celery task figures, /healthz and /readyz, and the alert rules naming only real metrics."""

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from campaigns.snapshot import publish_snapshot, redis_client, redis_keys
from campaigns.tasks import run_pacing_task
from serving.app import ServingApp
from tests.conftest import run
from tests.factories import make_campaign, make_line_item, make_placement
from tests.serving.test_app import ad_body, config

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, by name and labels (process left out)."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = tuple(sorted((k, v) for k, v in s.labels.items() if k != "process"))
            out[s.name, labels] = out.get((s.name, labels), 0.0) + s.value
    return out


def serve(scenario: Any) -> Any:
    async def go() -> Any:
        app = ServingApp(config())
        await app.startup()
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://ads.test") as c:
                result = await scenario(c)
            await app.publish_metrics()
            return result
        finally:
            await app.shutdown()

    return run(go())


@pytest.fixture
def placement_key() -> str:
    placement = make_placement()
    make_line_item(make_campaign(), "2.50")
    publish_snapshot()
    return placement.key


def test_serving_requests_reach_prometheus_by_door_status_and_reason(placement_key: str) -> None:
    async def scenario(client: httpx.AsyncClient) -> list[int]:
        statuses = []
        for _ in range(3):
            statuses.append((await client.post("/v1/ad", json=ad_body(placement_key))).status_code)
        nothing = ad_body(placement_key, "1x1")  # no creative of that size: 204
        statuses.append((await client.post("/v1/ad", json=nothing)).status_code)
        statuses.append((await client.get("/v1/nowhere")).status_code)
        statuses.append((await client.post("/v1/ad", content=b"{")).status_code)
        return statuses

    assert serve(scenario) == [200, 200, 200, 204, 404, 400]

    response = Client().get("/metrics")
    assert response.status_code == 200
    got = samples(response.content.decode())
    requests = "adsplatform_serving_requests_total"
    assert got[requests, (("door", "v1"), ("status", "200"))] == 3
    assert got[requests, (("door", "v1"), ("status", "204"))] == 1
    assert got[requests, (("door", "v1"), ("status", "400"))] == 1
    assert got[requests, (("door", "other"), ("status", "404"))] == 1
    reasons = {
        labels: n
        for (name, labels), n in got.items()
        if name == "adsplatform_serving_no_fill_total"
    }
    assert sum(reasons.values()) == 1
    # The histogram counts every /v1/ad request; its +Inf bucket equals its count.
    count = got["adsplatform_serving_request_duration_seconds_count", (("door", "v1"),)]
    inf = got[
        "adsplatform_serving_request_duration_seconds_bucket", (("door", "v1"), ("le", "+Inf"))
    ]
    assert count == inf == 5
    version = got["adsplatform_snapshot_published_version", ()]
    assert version > 0
    assert got["adsplatform_serving_snapshot_version", ()] == version
    assert 0 <= got["adsplatform_serving_snapshot_age_seconds", ()] < 600


def test_metrics_answer_loopback_or_the_token_only(settings: Any) -> None:
    settings.METRICS_TOKEN = "s3cret-token"
    outside = Client(REMOTE_ADDR="203.0.113.9")
    assert outside.get("/metrics").status_code == 403
    assert outside.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    ok = outside.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token")
    assert ok.status_code == 200
    assert "adsplatform_pacing_tick_seconds_ago" in ok.content.decode()
    assert Client().get("/metrics").status_code == 200  # loopback


# The task's end closes the database connections (tests/conftest.py): a transactional test.
@pytest.mark.django_db(transaction=True)
def test_celery_task_runs_are_counted_and_tell_that_pacing_ran() -> None:
    make_line_item(make_campaign(), "1.00")
    publish_snapshot()
    before = samples(Client().get("/metrics").content.decode())
    assert before["adsplatform_pacing_tick_seconds_ago", ()] == -1  # never ran

    run_pacing_task.apply()  # the real task, with Celery's task signals

    got = samples(Client().get("/metrics").content.decode())
    task = (("task", "campaigns.tasks.run_pacing_task"),)
    assert got["adsplatform_task_runs_total", task] == 1
    assert got["adsplatform_task_failures_total", task] == 0
    assert 0 <= got["adsplatform_pacing_tick_seconds_ago", ()] < 60


# The task's end closes the database connections (tests/conftest.py): a transactional test.
@pytest.mark.django_db(transaction=True)
def test_healthz_is_alive_and_readyz_names_what_is_missing() -> None:
    client = Client()
    assert client.get("/healthz").json() == {"status": "alive"}
    redis_client().delete(redis_keys().snapshot_version)

    unready = client.get("/readyz")
    assert unready.status_code == 503
    assert unready.json()["failing"] == ["snapshot"]
    assert unready.json()["checks"]["database"]["ok"] is True

    make_placement()
    publish_snapshot()
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.json()
    # Beat has not run pacing here: a probe that requires it is told so.
    beat = client.get("/readyz?require=beat")
    assert beat.status_code == 503
    assert beat.json()["failing"] == ["beat"]
    run_pacing_task.apply()
    after = client.get("/readyz?require=beat")
    assert after.status_code == 200, after.json()
    bad = client.get("/readyz?require=moon")
    assert bad.status_code == 400
    assert "moon" in bad.json()["detail"]


def test_every_metric_the_alert_rules_name_is_exposed(placement_key: str) -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        await client.post("/v1/ad", json=ad_body(placement_key))

    serve(scenario)
    families = list(text_string_to_metric_families(Client().get("/metrics").content.decode()))
    # A family is exposed (HELP and TYPE) even before it has samples: a counter as
    # <name>_total, a histogram as <name>_bucket/_count/_sum.
    exposed = {s.name for f in families for s in f.samples}
    for f in families:
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
        exposed |= {f.name + x for x in suffixes.get(f.type, ("",))}
    rules = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    named = set()
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert rule["alert"] and rule["expr"] and rule["annotations"]["summary"]
            named |= set(re.findall(r"adsplatform_[a-z_]+", rule["expr"]))
    # Counter families are exposed with their _total samples, histograms with _bucket.
    missing = {n for n in named if n not in exposed}
    assert named and not missing, missing
