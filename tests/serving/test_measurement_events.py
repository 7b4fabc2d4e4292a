"""What serving records for the measurement reports: the door on every event of an ad
request and its decisions, and buyer response times drained as "lat" events."""

import re
from typing import Any

import httpx
import pytest
from django.conf import settings
from redis import Redis

from campaigns.snapshot import publish_snapshot
from serving.app import ServingApp
from serving.events import Event, EventSink, decode_events
from serving.keys import RedisKeys
from serving.latency import TIMEOUT, LatencyCounts, bucket_of
from tests.conftest import run
from tests.factories import make_campaign, make_line_item, make_placement
from tests.serving.test_app import ad_body, with_client

pytestmark = pytest.mark.django_db


def stream_events(client: Redis) -> list[Event]:
    entries: Any = client.xrange(RedisKeys(settings.REDIS_KEY_PREFIX).events)
    return [e for _, fields in entries for e in decode_events(fields[b"v"])]


def test_every_event_of_a_request_and_its_decisions_names_the_door(redis_client: Redis) -> None:
    placement = make_placement()
    make_line_item(make_campaign(), "2.50")
    publish_snapshot()
    imp = {"id": "1", "tagid": placement.key, "banner": {"w": 300, "h": 250}}
    openrtb = {"id": "x-1", "imp": [imp]}

    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> None:
        v1 = (await client.post("/v1/ad", json=ad_body(placement.key))).json()
        await client.get(v1["decisions"][0]["impression_url"])
        await client.post("/v1/ad", json=ad_body(placement.key, "728x90"))  # no fill
        rtb = await client.post("/openrtb2/auction", json=openrtb)
        adm = rtb.json()["seatbid"][0]["bid"][0]["adm"]
        imp_url = adm.split('src="', 1)[1].split('"', 1)[0] if "/v1/imp/" in adm else ""
        if imp_url:
            await client.get(imp_url)
        await app.sink.drain()

    with_client(scenario)
    seen = [(e.t, e.dr, bool(e.li)) for e in stream_events(redis_client) if e.t in ("req", "imp")]
    assert ("req", "v1", True) in seen
    assert ("imp", "v1", True) in seen
    assert ("req", "v1", False) in seen
    assert ("req", "openrtb", True) in seen
    assert all(dr in ("v1", "openrtb") for _, dr, _ in seen)


def test_buyer_latency_counts_drain_into_the_stream_once(redis_client: Redis) -> None:
    counts = LatencyCounts()
    for ms in (3.0, 3.05, 40.0):
        counts.answered(7, ms)
    counts.timed_out(7)
    counts.answered(8, 900.0)

    async def drain() -> tuple[int, int]:
        sink = EventSink(settings.REDIS_URL, RedisKeys(settings.REDIS_KEY_PREFIX).events)
        first = counts.drain(sink, 1_800_000_000_000)
        second = counts.drain(sink, 1_800_000_000_000)
        await sink.close()
        return first, second

    assert run(drain()) == (4, 0)
    lat = {(e.b, int(e.r)): e.n for e in stream_events(redis_client) if e.t == "lat"}
    assert lat == {
        (7, bucket_of(3.0)): 2,
        (7, bucket_of(40.0)): 1,
        (7, TIMEOUT): 1,
        (8, bucket_of(900.0)): 1,
    }


def test_requests_and_their_impressions_carry_country_and_device_type(
    redis_client: Redis,
) -> None:
    placement = make_placement()
    make_line_item(make_campaign(), "2.50")
    publish_snapshot()
    imp = {"id": "1", "tagid": placement.key, "banner": {"w": 300, "h": 250}}
    device = {"devicetype": 4, "geo": {"country": "USA"}}
    request = {"id": "x-2", "imp": [imp], "device": device}

    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> None:
        rtb = await client.post("/openrtb2/auction", json=request)
        bid = rtb.json()["seatbid"][0]["bid"][0]
        urls = re.findall(r'https?://[^"\s<]+/v1/imp/[^"\s<]+', bid["adm"] + bid.get("burl", ""))
        await client.get(urls[0].replace("&amp;", "&"))
        await client.post("/openrtb2/auction", json={**request, "id": "x-3", "device": {}})
        await app.sink.drain()

    with_client(scenario)
    seen = [(e.t, e.g) for e in stream_events(redis_client) if e.t in ("req", "imp")]
    assert seen == [("req", "US4"), ("imp", "US4"), ("req", "")]
