"""Requests its targeting matched: counted per request key in serving, rolled up by the real
Celery worker, expanded per line item on the report ("0 requests matched its countries")."""

from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.test import Client
from django.utils import timezone
from redis import Redis

from adsplatform.asgi import application, serving_application
from campaigns import services
from campaigns.models import Membership, Role
from campaigns.snapshot import published_version
from reporting.models import RequestKeyHourly
from serving.events import EventSink, decode_events
from serving.index import Index
from serving.keys import RedisKeys
from serving.request_keys import RequestKeyDrain
from tests.conftest import run, wait_for
from tests.factories import make_advertiser, make_creative, make_placement
from tests.reporting.measurement_data import ingest_up_to


def _row(page: str, line_item_id: int) -> str:
    return page.split(f'data-line-item="{line_item_id}"', 1)[1].split("</tr>", 1)[0]


def _axes(row: str) -> list[str]:
    return [
        row.split(f'data-axis="{a}"', 1)[1].split(">", 1)[1].split("<", 1)[0]
        for a in ("placement", "slot", "country", "device", "channel")
    ]


@pytest.mark.django_db(transaction=True)
def test_a_line_item_whose_countries_no_request_matched_says_so(
    celery_worker: None, redis_client: Redis
) -> None:
    with transaction.atomic():
        advertiser = make_advertiser("Maple")
        placement = make_placement(sizes=["300x250"])
        campaign = services.create_campaign(
            advertiser=advertiser, name="Maple syrup",
            start_at=timezone.now() - timedelta(hours=1), daily_budget=Decimal("25.00"),
        )  # fmt: skip
        france = services.create_line_item(
            campaign=campaign, name="France only", bid=Decimal("5.00"), sizes=["300x250"],
            countries=["FR"], creatives=[make_creative(advertiser)],
        )  # fmt: skip
        us = services.create_line_item(
            campaign=campaign, name="US desktop", bid=Decimal("2.00"), sizes=["300x250"],
            countries=["US"], device_types=[2], creatives=[make_creative(advertiser)],
        )  # fmt: skip
        services.activate_campaign(campaign)
    wait_for(published_version)

    async def traffic() -> list[Any]:
        transport = httpx.ASGITransport(app=application)
        filled = []
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://ads.test") as http:
                for country, devicetype in [("US", 2)] * 3 + [("US", 4), ("CA", 2), ("CA", 2)]:
                    ad = await http.post("/v1/ad", json={
                        "placement": placement.key,
                        "slots": [{"id": "s", "sizes": ["300x250"]}],
                        "device": {"devicetype": devicetype, "geo": {"country": country}},
                    })  # fmt: skip
                    decisions = ad.json()["decisions"] if ad.status_code == 200 else []
                    filled.append([d["line_item"] for d in decisions])
        finally:
            # What the app's drain task does every few seconds, done now.
            app = serving_application
            app.request_keys.drain(app.store.index, app.sink)
            await app.shutdown()
        return filled

    filled = run(traffic())
    assert filled == [[us.pk]] * 3 + [[]] * 3
    stream = RedisKeys(settings.REDIS_KEY_PREFIX).events
    entries: Any = redis_client.xrevrange(stream, count=1)
    last = entries[0][0]
    ingest_up_to(redis_client, last)
    keys = {
        (r.country, r.device_type, r.slots): r.requests
        for r in RequestKeyHourly.objects.filter(placement_id=placement.pk)
    }
    assert keys == {("US", 2, "300x250"): 3, ("US", 4, "300x250"): 1, ("CA", 2, "300x250"): 2}

    user = get_user_model().objects.create_user("maple", password="pw-12345-long")
    Membership.objects.create(user=user, advertiser=advertiser, role=Role.ANALYST)
    client = Client()
    client.force_login(user)
    page = client.get("/reports/?range=today").content.decode()

    blocked, served = _row(page, france.pk), _row(page, us.pk)
    assert 'data-blocked="country">0 requests matched its countries<' in blocked
    assert _axes(blocked) == ["6", "6", "0", "0", "0"]
    assert 'data-axis="country" title="6 turned away here"' in blocked
    assert "data-blocked" not in served
    assert _axes(served) == ["6", "6", "4", "3", "3"]  # US: 4, of which desktop (2): 3

    # the same per hour through the API
    api = client.get("/api/v1/reports/targeting/").json()["results"]
    by_li = {(r["line_item_id"]): r for r in api}
    hour = by_li[france.pk]["hour"]
    assert by_li[france.pk] == {
        "hour": hour, "line_item_id": france.pk, "placement": 6, "slot": 6, "country": 0,
        "device": 0, "channel": 0, "blocked_at": "country",
    }  # fmt: skip
    assert by_li[us.pk]["channel"] == 3 and by_li[us.pk]["blocked_at"] is None
    assert len(api) == 2
    week = client.get("/api/v1/reports/targeting/?since=2026-01-01T00:00&until=2026-02-01T00:00")
    assert week.status_code == 400
    assert week.json()["error"]["fields"][0]["path"] == "until"
    outsider = get_user_model().objects.create_user("outsider", password="pw-12345-long")
    client.force_login(outsider)
    assert client.get("/api/v1/reports/targeting/").json() == {"results": []}


def test_the_drain_empties_every_recent_index_into_one_entry() -> None:
    sent: list[list[Any]] = []

    class Sink(EventSink):
        def emit(self, events: list[Any]) -> None:
            sent.append(events)

    sink = Sink(url="redis://127.0.0.1:1", stream="s")
    old, new = Index(version=1), Index(version=2)
    old.request_keys[(7, ("300x250",), "US", 2, "web")] = 4
    new.request_keys[(7, ("300x250",), "US", 2, "web")] = 1
    new.request_keys[(7, ("video",), None, None, None)] = 2
    drain = RequestKeyDrain()

    drain.drain(old, sink, now=100.0)
    drain.drain(new, sink, now=101.0)  # the old index is drained too, for KEEP_SECONDS
    old.request_keys[(7, ("300x250",), "US", 2, "web")] = 5  # a request still on it
    drain.drain(new, sink, now=102.0)
    assert drain.drain(new, sink, now=200.0) == 0

    def as_dict(events: list[Any]) -> dict[tuple[int, str], int]:
        return {(e.pl, e.r): e.n for e in events}

    assert [as_dict(batch) for batch in sent] == [
        {(7, "300x250|US|2|web"): 4},
        {(7, "300x250|US|2|web"): 1, (7, "video||0|"): 2},
        {(7, "300x250|US|2|web"): 5},
    ]
    assert decode_events(b'[{"t":"keys","ts":1,"pl":7,"r":"video||0|","n":2}]')[0].n == 2
