"""Operations: the serving processes' figures through Redis into Prometheus' /metrics, the
Celery task figures, /healthz and /readyz, and the alert rules naming only real metrics."""

import json
import re
import shutil
import subprocess
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


def exposed_families(placement_key: str) -> dict[str, set[str]]:
    """Every sample name a real scrape exposes after real traffic, with its labels."""

    async def scenario(client: httpx.AsyncClient) -> None:
        await client.post("/v1/ad", json=ad_body(placement_key))

    serve(scenario)
    families = list(text_string_to_metric_families(Client().get("/metrics").content.decode()))
    # A family is exposed (HELP and TYPE) even before it has samples: a counter as
    # <name>_total, a histogram as <name>_bucket/_count/_sum.
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
    exposed: dict[str, set[str]] = {}
    for f in families:
        for s in f.samples:
            exposed.setdefault(s.name, set()).update(s.labels)
        for x in suffixes.get(f.type, ("",)):
            exposed.setdefault(f.name + x, set())
    return exposed


# A metric named in an expression, and the labels of its selector if it has one.
SELECTOR = re.compile(r"(adsplatform_[a-z0-9_]+)(?:\{([^}]*)\})?")
LABEL = re.compile(r"([a-z_]+)\s*(?:=~|!~|!=|=)")
# Labels the exposition gives every series of a family (with samples or not).
LABELS = {
    "adsplatform_serving_": {"process"},
    "adsplatform_buyer_outcomes": {"buyer", "outcome"},
    "adsplatform_buyer_": {"process", "buyer"},
    "adsplatform_campaign_info": {"campaign", "name", "currency", "pacing_mode", "time_zone"},
    "adsplatform_campaign_": {"campaign", "currency"},
    "adsplatform_task_": {"task"},
    "adsplatform_reconcile_repaired": {"currency"},
}


def check_expression(expr: str, exposed: dict[str, set[str]]) -> set[str]:
    """Problems with one PromQL expression: metrics not exposed, selector labels they do not
    carry, unbalanced brackets."""
    problems = set()
    for name, selector in SELECTOR.findall(expr):
        if name not in exposed:
            problems.add(f"{name} not exposed")
            continue
        known = set(exposed[name]) | {"le"}
        for prefix, labels in LABELS.items():
            if name.startswith(prefix):
                known |= labels
                break
        for label in LABEL.findall(selector or ""):
            if label not in known:
                problems.add(f"{name} has no label {label}")
    for opening, closing in ("()", "{}", "[]"):
        if expr.count(opening) != expr.count(closing):
            problems.add(f"unbalanced {opening}{closing} in {expr!r}")
    return problems


def test_every_metric_the_alert_rules_name_is_exposed(placement_key: str) -> None:
    exposed = exposed_families(placement_key)
    path = ROOT / "deploy/prometheus/alerts.yml"
    rules = yaml.safe_load(path.read_text())
    problems, names = set(), set()
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert rule["alert"] and rule["expr"] and rule["annotations"]["summary"]
            assert rule["labels"]["severity"] in ("page", "warn")
            problems |= check_expression(rule["expr"], exposed)
            names.add(rule["alert"])
    assert not problems, sorted(problems)
    # What docs/deploy.md "Operations" promises the rules cover.
    for alert in (
        "PacingOffSchedule", "CampaignOffSchedule", "CampaignBudgetSpentBefore18Local",
        "IngestLagging", "IngestLagSeconds", "SnapshotStale", "BuyerTimeoutRate",
        "Serving5xxRate", "ReconciliationRepairing",
    ):  # fmt: skip
        assert alert in names, alert
    promtool = shutil.which("promtool")
    if promtool:  # the real parser when it is installed; the checks above otherwise
        checked = subprocess.run(
            [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_grafana_panel_queries_exposed_metrics(placement_key: str) -> None:
    exposed = exposed_families(placement_key)
    dashboard = json.loads((ROOT / "deploy/grafana/adsplatform.json").read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    problems = set()
    for panel in panels:
        assert panel["title"] and panel["targets"], panel
        assert panel["datasource"]["uid"] == "${datasource}"
        for target in panel["targets"]:
            problems |= check_expression(target["expr"], exposed)
    assert not problems, sorted(problems)
    # Every family /metrics exposes is on the dashboard or in an alert (nothing unseen).
    queried = {
        name
        for panel in panels
        for target in panel["targets"]
        for name, _ in SELECTOR.findall(target["expr"])
    }
    families = {re.sub(r"_(total|bucket|count|sum)$", "", n) for n in exposed}
    shown = {re.sub(r"_(total|bucket|count|sum)$", "", n) for n in queried}
    assert families - shown <= {
        "adsplatform_serving_snapshot_loaded_seconds_ago",
        "adsplatform_ingest_stream_length",
        "adsplatform_ingest_checked_seconds_ago",
        "adsplatform_task_last_end_seconds_ago",
        "adsplatform_campaign_exhausted_local_hour",
        "adsplatform_serving_request_duration_seconds",  # shown through its _bucket
    }, families - shown
