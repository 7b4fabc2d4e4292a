"""Decision ids are made by the server; the caller's request id is only a correlation id."""

import random
import re
import zlib
from typing import Any

import httpx
import pytest
from django.conf import settings
from redis import Redis

from serving.app import ServingApp
from serving.events import decode_events
from serving.ids import decision_rng, new_decision_id
from serving.keys import RedisKeys
from tests.serving.test_app import ad_body, placement_key, with_client

pytestmark = pytest.mark.django_db

__all__ = ["placement_key"]  # the fixture, shared with test_app


def stream_events(client: Redis) -> list[Any]:
    entries: Any = client.xrange(RedisKeys(settings.REDIS_KEY_PREFIX).events)
    return [event for _, fields in entries for event in decode_events(fields[b"v"])]


def test_decision_ids_are_128_random_bits_in_22_url_safe_characters() -> None:
    ids = {new_decision_id() for _ in range(5000)}  # spans many refills of the byte pool
    assert len(ids) == 5000
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}", i) for i in ids)


def test_the_same_decision_id_replays_the_same_draws() -> None:
    draws = [decision_rng("AAAAAAAAAAAAAAAAAAAAAA").random() for _ in range(3)]
    assert draws[0] == draws[1] == draws[2]
    assert decision_rng("AAAAAAAAAAAAAAAAAAAAAB").random() != draws[0]


def test_a_decisions_draws_are_those_of_random_random_of_its_seed() -> None:
    """The generator seeds itself on the first draw, whichever method draws first."""
    seed = zlib.crc32(b"AAAAAAAAAAAAAAAAAAAAAA")
    for draw in (
        lambda r: [r.random(), r.random(), r.choice("abcdefg"), r.random()],
        lambda r: [r.choice("abcdefg"), r.random(), r.randrange(10**6)],
        lambda r: [r.choices(range(5), [1, 2, 3, 4, 5])[0], r.randrange(7), r.random()],
        lambda r: [r.getrandbits(64), r.gauss(0, 1), r.random()],
    ):
        assert draw(decision_rng("AAAAAAAAAAAAAAAAAAAAAA")) == draw(random.Random(seed))


def test_a_reused_request_id_gets_new_decision_ids_and_both_impressions_bill(
    placement_key: str, redis_client: Redis
) -> None:
    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> list[httpx.Response]:
        headers = {"x-request-id": "client-id-0001"}
        answers = [
            await client.post("/v1/ad", json=ad_body(placement_key), headers=headers)
            for _ in range(2)
        ]
        imps = [await client.get(a.json()["decisions"][0]["impression_url"]) for a in answers]
        await app.sink.drain()
        return answers + imps

    first, second, imp1, imp2 = with_client(scenario)

    # The caller's id is echoed, but is no decision's id.
    assert {r.headers["x-request-id"] for r in (first, second)} == {"client-id-0001"}
    assert (imp1.status_code, imp2.status_code) == (200, 200)
    ids = [first.json()["id"], second.json()["id"]]
    assert ids[0] != ids[1]
    assert "client-id-0001" not in ids
    events = stream_events(redis_client)
    requests = [e for e in events if e.t == "req"]
    # A filled slot's "req" carries its decision's id: the join key of its impression.
    assert [e.d for e in requests] == [f"{ids[0]}-0", f"{ids[1]}-0"]
    assert [e.rq for e in requests] == ["client-id-0001", "client-id-0001"]
    impressions = [e for e in events if e.t == "imp"]
    assert [e.d for e in impressions] == [f"{ids[0]}-0", f"{ids[1]}-0"]
    assert [e.cpm for e in impressions] == [1_010_000, 1_010_000]  # both billed


def test_without_a_request_id_the_answer_echoes_our_own(placement_key: str) -> None:
    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> httpx.Response:
        return await client.post("/v1/ad", json=ad_body(placement_key))

    response = with_client(scenario)
    assert response.headers["x-request-id"] == response.json()["id"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", response.json()["id"])


def test_an_openrtb_bid_request_id_is_the_correlation_id_not_the_decision_id(
    placement_key: str, redis_client: Redis
) -> None:
    body = {
        "id": "exchange-auction-7",
        "imp": [{"id": "1", "banner": {"w": 300, "h": 250}}],
        "site": {"domain": "news.example"},
    }

    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> list[httpx.Response]:
        answers = [
            await client.post(f"/openrtb2/auction?placement={placement_key}", json=body)
            for _ in range(2)
        ]
        await app.sink.drain()
        return answers

    answers = with_client(scenario)
    assert [a.json()["id"] for a in answers] == ["exchange-auction-7"] * 2
    requests = [e for e in stream_events(redis_client) if e.t == "req"]
    assert [e.rq for e in requests] == ["exchange-auction-7"] * 2
    assert requests[0].d != requests[1].d
    assert "exchange-auction-7" not in {requests[0].d, requests[1].d}


def test_every_slots_req_carries_the_requests_country_and_device_type(
    placement_key: str, redis_client: Redis
) -> None:
    body = {
        "id": "exchange-auction-8",
        "imp": [
            {"id": "1", "banner": {"w": 300, "h": 250}},
            {"id": "2", "banner": {"w": 300, "h": 250}},
            {"id": "3", "banner": {"w": 728, "h": 90}},  # no line item of this size
        ],
        "site": {"domain": "news.example"},
        "device": {"devicetype": 4, "geo": {"country": "USA"}},
    }

    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> httpx.Response:
        answer = await client.post(f"/openrtb2/auction?placement={placement_key}", json=body)
        await app.sink.drain()
        return answer

    assert with_client(scenario).status_code == 200
    requests = [e for e in stream_events(redis_client) if e.t == "req"]
    assert [e.g for e in requests] == ["US4", "US4", "US4"]
    assert [e.li != 0 for e in requests] == [True, True, False]
