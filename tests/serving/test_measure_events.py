"""The `/v1/ev/` door: viewability and player events by name, once per decision where the
event happens once (`serving.measure`), unknown names refused, nothing billed."""

import html
import re

import httpx
import pytest
from django.conf import settings
from redis import Redis

from creatives.placeholders import VIEWABILITY_HANDLER
from serving.app import ServingApp
from serving.keys import RedisKeys
from tests.serving.test_app import ad_body, config, placement_key, with_client
from tests.serving.test_serving_path import stream_events

__all__ = ["placement_key"]

pytestmark = pytest.mark.django_db


def send_events(placement_key: str, names: list[str]) -> tuple[list[int], list[str]]:
    """Statuses of `?e=<name>` for one decision, and the event names recorded."""

    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> list[int]:
        [decision] = (await client.post("/v1/ad", json=ad_body(placement_key))).json()["decisions"]
        ev = decision["impression_url"].replace("/v1/imp/", "/v1/ev/")
        statuses = [(await client.get(f"{ev}?e={name}")).status_code for name in names]
        await app.sink.drain()
        return statuses

    statuses = with_client(scenario, config(public_url="http://ads.test"))
    client: Redis = Redis.from_url(settings.REDIS_URL)
    return statuses, [e.r for e in stream_events(client) if e.t == "evt"]


def test_viewable_and_measurable_are_counted_once_per_decision(placement_key: str) -> None:
    statuses, recorded = send_events(
        placement_key, ["measurable", "viewable", "measurable", "viewable", "viewable"]
    )
    assert statuses == [200] * 5
    assert recorded == ["measurable", "viewable"]


def test_vast_once_events_are_counted_once_and_repeatable_ones_each_time(
    placement_key: str,
) -> None:
    names = [
        "start", "start", "firstQuartile", "midpoint", "pause", "resume", "pause", "resume",
        "mute", "unmute", "thirdQuartile", "thirdQuartile", "complete", "complete", "skip",
    ]  # fmt: skip
    statuses, recorded = send_events(placement_key, names)
    assert statuses == [200] * len(names)
    assert recorded == [
        "start", "firstQuartile", "midpoint", "pause", "resume", "pause", "resume",
        "mute", "unmute", "thirdQuartile", "complete", "skip",
    ]  # fmt: skip


def test_events_of_two_decisions_are_counted_apart(placement_key: str) -> None:
    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> None:
        for _ in range(2):
            [d] = (await client.post("/v1/ad", json=ad_body(placement_key))).json()["decisions"]
            ev = d["impression_url"].replace("/v1/imp/", "/v1/ev/")
            assert (await client.get(f"{ev}?e=viewable")).status_code == 200
        await app.sink.drain()

    with_client(scenario, config(public_url="http://ads.test"))
    client: Redis = Redis.from_url(settings.REDIS_URL)
    viewable = [e for e in stream_events(client) if e.t == "evt" and e.r == "viewable"]
    assert len({e.d for e in viewable}) == 2


def test_an_unknown_or_missing_event_name_is_a_400(placement_key: str) -> None:
    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> list[httpx.Response]:
        [decision] = (await client.post("/v1/ad", json=ad_body(placement_key))).json()["decisions"]
        ev = decision["impression_url"].replace("/v1/imp/", "/v1/ev/")
        answers = [
            await client.get(f"{ev}?e=viewed"),
            await client.get(ev),
            await client.get(f"{ev}?e=" + "x" * 500),
        ]
        await app.sink.drain()
        return answers

    answers = with_client(scenario, config(public_url="http://ads.test"))
    assert [a.status_code for a in answers] == [400, 400, 400]
    assert {a.json()["error"] for a in answers} == {"unknown_event"}
    assert "expected one of complete, firstQuartile" in answers[0].json()["detail"]
    client: Redis = Redis.from_url(settings.REDIS_URL)
    assert [e for e in stream_events(client) if e.t == "evt"] == []


def test_events_are_never_billed(placement_key: str) -> None:
    statuses, _ = send_events(placement_key, ["measurable", "viewable", "start", "complete"])
    assert statuses == [200] * 4
    client: Redis = Redis.from_url(settings.REDIS_URL)
    events = stream_events(client)
    assert {e.cpm for e in events if e.t == "evt"} == {0}
    assert [e.t for e in events if e.t in ("imp", "clk")] == []
    # The decision's impression is still new: an event never stands in for it.
    keys = RedisKeys(settings.REDIS_KEY_PREFIX)
    decision = next(e.d for e in events if e.t == "evt")
    assert client.exists(keys.seen("imp", decision)) == 0


def test_our_openrtb_adm_carries_the_measurement_and_its_beacon_is_recorded(
    placement_key: str,
) -> None:
    body = {"id": "x-1", "imp": [{"id": "1", "banner": {"w": 300, "h": 250}}]}

    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> tuple[str, str]:
        answer = await client.post(f"/openrtb2/auction?placement={placement_key}", json=body)
        [bid] = answer.json()["seatbid"][0]["bid"]
        [event_url] = re.findall(r'data-ev="([^"]+)"', bid["adm"])
        assert (await client.get(f"{event_url}?e=viewable")).status_code == 200
        await app.sink.drain()
        return bid["adm"], event_url

    adm, event_url = with_client(scenario, config(public_url="http://ads.test"))
    assert event_url.startswith("http://ads.test/v1/ev/")
    assert f'onload="{html.escape(VIEWABILITY_HANDLER)}"' in adm
    client: Redis = Redis.from_url(settings.REDIS_URL)
    assert [e.r for e in stream_events(client) if e.t == "evt"] == ["viewable"]
