"""The event stream is never trimmed past what ingestion rolled up; its growth is reported."""

import logging
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Sum
from django.test import Client
from redis import Redis

from campaigns.snapshot import publish_snapshot
from compliance.retention import purge_personal_data
from reporting.backlog import read_gauge
from reporting.ingest import check_backlog, ingest_events
from reporting.models import HourlyRollup
from serving import events, spend
from serving.app import ServingApp
from serving.keys import RedisKeys
from tests.factories import make_campaign, make_line_item, make_placement
from tests.reporting.test_ingest import add
from tests.serving.test_app import ad_body, with_client

pytestmark = pytest.mark.django_db

KEYS = RedisKeys(settings.REDIS_KEY_PREFIX)
OLD_MAXLEN = 50  # the old cap (5,000,000), scaled down so a test can push past it


@pytest.fixture
def placement_key() -> str:
    placement = make_placement()
    make_line_item(make_campaign(), "2.50")
    publish_snapshot()
    return placement.key


def test_with_ingest_stalled_pushing_past_the_old_maxlen_loses_no_unrolled_event(
    redis_client: Redis, placement_key: str, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    # Where serving used to cap the stream (XADD MAXLEN ~); gone now, so this sets nothing.
    monkeypatch.setattr(events, "STREAM_MAXLEN", OLD_MAXLEN, raising=False)
    monkeypatch.setattr(spend, "STREAM_MAXLEN", OLD_MAXLEN, raising=False)
    served = 120  # each an ad request entry and an impression entry: 240 > 50

    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> int:
        ok = 0
        for _ in range(served):
            ad = (await client.post("/v1/ad", json=ad_body(placement_key))).json()
            imp = await client.get(ad["decisions"][0]["impression_url"])
            ok += imp.status_code == 200
        return ok

    # given: ingestion stalled while traffic goes on
    assert with_client(scenario) == served
    assert redis_client.xlen(KEYS.events) == 2 * served
    # retention runs meanwhile, with every event already past its retention
    settings.RAW_EVENT_RETENTION_SECONDS = -3600
    purge_personal_data()
    assert redis_client.xlen(KEYS.events) == 2 * served  # nothing rolled up: nothing trimmed

    # when: ingestion comes back
    while ingest_events(batch_size=100).read:
        pass

    # then: every request and impression is in the rollups
    totals = HourlyRollup.objects.aggregate(r=Sum("requests"), i=Sum("impressions"))
    assert totals == {"r": served, "i": served}


def test_a_stream_past_its_limit_is_reported_once_per_crossing(
    redis_client: Redis, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.STREAM_BACKLOG_LIMIT = 10
    for _ in range(15):
        add(redis_client, "imp", cpm=1)

    with caplog.at_level(logging.WARNING, logger="reporting.backlog"):
        first = check_backlog(redis_client, KEYS)
        check_backlog(redis_client, KEYS)
        check_backlog(redis_client, KEYS)
    over = [r for r in caplog.records if "over STREAM_BACKLOG_LIMIT" in r.getMessage()]
    assert len(over) == 1  # once per crossing, not per check or per event
    assert "15 entries" in over[0].getMessage()
    assert (first.length, first.over, first.crossings) == (15, True, 1)
    gauge = read_gauge(redis_client, KEYS.stream_backlog)
    assert {k: gauge[k] for k in ("length", "limit", "over", "crossings")} == {
        "length": "15",
        "limit": "10",
        "over": "1",
        "crossings": "1",
    }

    # ingested and trimmed (past retention): back under, said once; then over again
    settings.RAW_EVENT_RETENTION_SECONDS = -3600
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="reporting.backlog"):
        ingest_events()  # measures before it reads: still over, no new line
        under = check_backlog(redis_client, KEYS)
        for _ in range(11):
            add(redis_client, "imp", cpm=1)
        again = check_backlog(redis_client, KEYS)
    messages = [r.getMessage() for r in caplog.records]
    assert under.length == 0 and not under.over
    assert sum("back under" in m for m in messages) == 1
    assert sum("over STREAM_BACKLOG_LIMIT" in m for m in messages) == 1
    assert (again.length, again.over, again.crossings) == (11, True, 2)


def test_the_admin_shows_the_backlog(redis_client: Redis, settings: Any) -> None:
    settings.STREAM_BACKLOG_LIMIT = 2
    for _ in range(3):
        add(redis_client, "imp", cpm=1)
    ingest_events(batch_size=1, max_batches=1)  # one rolled up, two behind
    staff = get_user_model().objects.create_superuser("ops", password="pw-12345-long")
    browser = Client()
    browser.force_login(staff)

    page = browser.get("/admin/reporting/streamwatermark/").content.decode()

    # Redis before 7 does not say how far behind a consumer group is.
    behind = "2" if int(redis_client.info()["redis_version"].split(".")[0]) >= 7 else "unknown"
    assert f"3 entries, {behind} not rolled up; OVER THE LIMIT, nothing is trimmed of 2" in page
