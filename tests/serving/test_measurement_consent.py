"""TCF purpose 7 (measure ad performance) decides whether a decision's player and
viewability events are recorded (issue 13 item 13); impressions, clicks and errors are not
measurement and are recorded either way."""

import httpx
import pytest
from django.conf import settings
from redis import Redis

from serving.app import ServingApp
from tests.compliance.tcf_encoder import Core, VendorSection, encode_core
from tests.serving.test_app import ad_body, config, placement_key, with_client
from tests.serving.test_serving_path import stream_events

__all__ = ["placement_key"]

pytestmark = pytest.mark.django_db


def tc(purposes: set[int]) -> str:
    ours = settings.GVL_VENDOR_ID
    return encode_core(
        Core(
            purposes_consent=frozenset(purposes),
            vendor_consents=VendorSection(max_id=ours, ids=frozenset({ours})),
        )
    )


def events_after(placement_key: str, consent: str) -> list[str]:
    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> None:
        body = ad_body(placement_key, regs={"gdpr": 1}, user={"consent": consent})
        [decision] = (await client.post("/v1/ad", json=body)).json()["decisions"]
        imp = decision["impression_url"]
        answers = [
            await client.get(imp.replace("/v1/imp/", "/v1/ev/") + "?e=firstQuartile"),
            await client.get(imp.replace("/v1/imp/", "/v1/err/") + "?code=303"),
            await client.get(imp),
        ]
        assert [a.status_code for a in answers] == [200, 200, 200]
        await app.sink.drain()

    with_client(scenario, config(public_url="http://ads.test"))
    client: Redis = Redis.from_url(settings.REDIS_URL)
    return sorted(e.t for e in stream_events(client) if e.t in ("imp", "err", "evt"))


def test_player_events_are_recorded_with_purpose_7(placement_key: str) -> None:
    assert events_after(placement_key, tc({1, 2, 3, 4, 7})) == ["err", "evt", "imp"]


def test_player_events_are_not_recorded_without_purpose_7(placement_key: str) -> None:
    assert events_after(placement_key, tc({1, 2, 3, 4})) == ["err", "imp"]


def test_outside_gdpr_player_events_are_recorded(placement_key: str) -> None:
    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> None:
        [decision] = (await client.post("/v1/ad", json=ad_body(placement_key))).json()["decisions"]
        await client.get(decision["impression_url"].replace("/v1/imp/", "/v1/ev/") + "?e=start")
        await app.sink.drain()

    with_client(scenario, config(public_url="http://ads.test"))
    client: Redis = Redis.from_url(settings.REDIS_URL)
    assert [e.t for e in stream_events(client) if e.t == "evt"] == ["evt"]
