"""Each creative format from upload through review to a served, tracked impression.

Real rows through the creatives and campaign services, a snapshot published to the real
Redis, the real ASGI serving app; the impression URL the markup carries is fetched and its
event lands in the stream. The VAST served is checked against the official XSD.
"""

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
from django.utils import timezone
from redis import Redis

from campaigns import services
from campaigns.snapshot import build_snapshot, publish_snapshot
from creatives import services as creative_services
from creatives.models import Creative
from creatives.vast import validate_vast
from serving.app import ServingApp
from tests.creatives.test_vast import xsd  # noqa: F401 - the fixture
from tests.factories import (
    make_audio_creative,
    make_campaign,
    make_html5_creative,
    make_image_creative,
    make_native_creative,
    make_placement,
    make_vast_wrapper_creative,
    make_video_creative,
)
from tests.serving.test_app import config, with_client
from tests.serving.test_serving_path import stream_events

pytestmark = pytest.mark.django_db

IMPRESSION_RE = re.compile(r"<Impression[^>]*><!\[CDATA\[([^\]]+)\]\]>")


def _approved_line_item(factory: Callable[..., Creative], size: str = "300x250") -> Creative:
    campaign = make_campaign()
    creative = factory(campaign.advertiser, approve=False)
    services.create_line_item(
        campaign=campaign, name="Line", bid=Decimal("3.00"),
        sizes=[size], creatives=[creative],
    )  # fmt: skip
    # Pending creatives never reach the snapshot; approval lets it serve.
    assert build_snapshot(1, timezone.now()).line_items == []
    creative_services.approve_creative(creative)
    publish_snapshot()
    return creative


def _impressions(client: Redis) -> list[Any]:
    return [e for e in stream_events(client) if e.t == "imp"]


def _track(url: str) -> Callable[[httpx.AsyncClient, ServingApp], Any]:
    async def go(client: httpx.AsyncClient, app: ServingApp) -> int:
        return (await client.get(url)).status_code

    return go


@pytest.mark.parametrize(
    ("factory", "fmt"),
    [
        (make_image_creative, "banner"),
        (make_html5_creative, "banner"),
        (make_native_creative, "native"),
    ],
    ids=["image", "html5", "native"],
)
def test_display_and_native_through_v1_ad(
    factory: Callable[..., Creative], fmt: str, redis_client: Redis
) -> None:
    placement = make_placement()
    creative = _approved_line_item(factory)
    slot: dict[str, Any] = {"id": "s", "sizes": ["300x250"]}
    if fmt == "native":
        slot["formats"] = ["native"]

    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> dict[str, Any]:
        response = await client.post("/v1/ad", json={"placement": placement.key, "slots": [slot]})
        assert response.status_code == 200, response.text
        [decision] = response.json()["decisions"]
        assert (await client.get(decision["impression_url"])).status_code == 200
        await app.sink.drain()
        return decision

    decision = with_client(scenario, config(public_url="http://ads.test"))

    assert decision["creative"] == creative.pk
    assert decision["format"] == fmt
    assert "%%" not in decision["markup"]
    if fmt == "native":
        assert decision["impression_url"] in decision["native"]
    [imp] = _impressions(redis_client)
    assert imp.cr == creative.pk


@pytest.mark.usefixtures("xsd")
@pytest.mark.parametrize(
    ("factory", "query"),
    [
        (make_video_creative, "w=640&h=360"),
        (lambda adv, approve: make_vast_wrapper_creative(adv, approve=approve), "w=640&h=360"),
        (make_audio_creative, "format=audio"),
    ],
    ids=["video", "vast-wrapper", "audio"],
)
def test_video_and_audio_through_v1_vast(
    factory: Callable[..., Creative], query: str, redis_client: Redis
) -> None:
    placement = make_placement()
    creative = _approved_line_item(factory)

    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> bytes:
        response = await client.get(f"/v1/vast?placement={placement.key}&{query}")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/xml"
        body = response.content
        [impression_url] = IMPRESSION_RE.findall(body.decode())
        assert (await client.get(impression_url)).status_code == 200
        await app.sink.drain()
        return body

    vast = with_client(scenario, config(public_url="http://ads.test"))

    assert validate_vast(vast) == []
    assert b"%%" not in vast
    [imp] = _impressions(redis_client)
    assert imp.cr == creative.pk


@pytest.mark.usefixtures("xsd")
def test_a_vast_error_is_recorded_as_a_creative_failure(redis_client: Redis) -> None:
    placement = make_placement()
    creative = _approved_line_item(make_video_creative)

    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> None:
        body = (await client.get(f"/v1/vast?placement={placement.key}")).text
        [error_url] = re.findall(r"<Error><!\[CDATA\[(.*?)\]\]></Error>", body)
        # The player substitutes [ERRORCODE]: 405 = "problem displaying the media file".
        assert (await client.get(error_url.replace("[ERRORCODE]", "405"))).status_code == 200
        await app.sink.drain()

    with_client(scenario, config(public_url="http://ads.test"))

    errors = [e for e in stream_events(redis_client) if e.t == "err"]
    assert [(e.cr, e.r) for e in errors] == [(creative.pk, "405")]


@pytest.mark.usefixtures("xsd")
def test_a_players_tracking_events_are_counted_as_vast_says(redis_client: Redis) -> None:
    """Each `<Tracking>` URL of the served VAST fired twice, as a replaying player might:
    start, the quartiles, complete and skip count once; mute, unmute, pause and resume
    each time. The creative's AdVerifications come through into the served document."""
    placement = make_placement()
    verification = {"vendor": "verifier.example-omid", "javascript_url": "https://v.example/o.js"}

    def factory(advertiser: Any, approve: bool) -> Creative:
        creative = make_video_creative(advertiser, approve=False)
        return creative_services.update_creative(creative, ad_verifications=[verification])

    creative = _approved_line_item(factory)

    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> bytes:
        body = (await client.get(f"/v1/vast?placement={placement.key}&w=640&h=360")).content
        tracking = re.findall(r'<Tracking event="(\w+)"><!\[CDATA\[(.*?)\]\]>', body.decode())
        assert len(tracking) == 10
        for _ in range(2):
            for _event, url in tracking:
                assert (await client.get(url)).status_code == 200
        await app.sink.drain()
        return body

    vast = with_client(scenario, config(public_url="http://ads.test"))

    assert validate_vast(vast) == []
    assert b"<![CDATA[https://v.example/o.js]]></JavaScriptResource>" in vast
    counted: dict[str, int] = {}
    for e in stream_events(redis_client):
        if e.t == "evt":
            assert e.cr == creative.pk
            counted[e.r] = counted.get(e.r, 0) + 1
    assert counted == {
        "start": 1, "firstQuartile": 1, "midpoint": 1, "thirdQuartile": 1, "complete": 1,
        "skip": 1, "mute": 2, "unmute": 2, "pause": 2, "resume": 2,
    }  # fmt: skip
