"""The whole request path through the ASGI app on the real Redis: front door, enrichment,
OpenRTB conformance, frequency caps, explain, budget stop and snapshot swaps."""

import asyncio
import time
from decimal import Decimal
from typing import Any

import httpx
import pytest
from django.contrib.auth import get_user_model
from redis import Redis

from campaigns import services
from campaigns.models import ApiToken
from campaigns.snapshot import publish_snapshot
from serving.app import ServingApp
from serving.events import decode_events
from tests.factories import make_campaign, make_line_item, make_placement
from tests.serving.test_app import ad_body, config, stream_length, with_client

pytestmark = pytest.mark.django_db

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


def stream_events(client: Redis) -> list[Any]:
    """Every event in the stream, in order."""
    from django.conf import settings

    from serving.keys import RedisKeys

    entries: list[Any] = client.xrange(RedisKeys(settings.REDIS_KEY_PREFIX).events)  # type: ignore[assignment]
    return [e for _, fields in entries for e in decode_events(fields[b"v"])]


@pytest.fixture
def book() -> dict[str, Any]:
    placement = make_placement()
    campaign = make_campaign()
    best = make_line_item(campaign, "2.50")
    other = make_line_item(campaign, "1.00")
    publish_snapshot()
    return {"key": placement.key, "placement": placement, "best": best, "other": other}


def openrtb_body(key: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": "auction-1",
        "imp": [{"id": "1", "tagid": key, "banner": {"w": 300, "h": 250}, "secure": 1}],
        "site": {"domain": "news.example", "page": "https://news.example/a"},
        "device": {"ua": CHROME, "ip": "203.0.113.7"},
        "tmax": 300,
        **extra,
    }


def test_per_key_rate_limit_answers_429(book: dict[str, Any]) -> None:
    # The limit counts per one-second window of the request's arrival: a burst that crossed a
    # window boundary would start counting again. So each burst starts just after a boundary,
    # and only a burst that began and ended in one window is judged (a loaded machine may
    # need another try; every try is a fresh window).
    async def burst(client: httpx.AsyncClient) -> tuple[list[int], bool]:
        await asyncio.sleep(1 - time.time() % 1 + 0.005)
        started, codes = time.time(), []
        for _ in range(5):
            codes.append((await client.post("/v1/ad", json=ad_body(book["key"]))).status_code)
        return codes, int(started) == int(time.time())

    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> list[int]:
        await client.post("/v1/ad", json=ad_body(book["key"]))  # warm: connections, caches
        for _ in range(5):
            codes, one_window = await burst(client)
            if one_window:
                return codes
        raise AssertionError("no burst of 5 requests fitted in one second")

    codes = with_client(scenario, config(rate_limit=3))
    assert codes == [200, 200, 200, 429, 429]


def test_crawlers_get_no_ad(book: dict[str, Any]) -> None:
    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> list[httpx.Response]:
        headers = {"user-agent": GOOGLEBOT}
        body = ad_body(book["key"], device={"ua": GOOGLEBOT})
        v1 = await client.post("/v1/ad", json=body, headers=headers)
        rtb = openrtb_body(book["key"], device={"ua": GOOGLEBOT})
        ortb = await client.post("/openrtb2/auction", json=rtb)
        return [v1, ortb]

    v1, ortb = with_client(scenario)
    assert (v1.status_code, v1.headers["x-no-fill-reason"]) == (204, "crawler")
    assert ortb.status_code == 204
    assert ortb.headers["x-no-bid-reason"].startswith("3:")  # OpenRTB nbr 3: known spider


def test_openrtb_bid_response_shape(book: dict[str, Any]) -> None:
    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> httpx.Response:
        return await client.post("/openrtb2/auction", json=openrtb_body(book["key"]))

    response = with_client(scenario)

    assert response.status_code == 200
    assert response.headers["x-openrtb-version"] == "2.6"
    body = response.json()
    assert body["id"] == "auction-1"
    assert body["cur"] == "USD"
    [seat] = body["seatbid"]
    [bid] = seat["bid"]
    assert bid["impid"] == "1"
    assert Decimal(str(bid["price"])) == Decimal("1.01")  # second price over the 1.00 bid
    assert (bid["w"], bid["h"], bid["mtype"]) == (300, 250, 1)
    assert bid["crid"] and bid["cid"] == str(book["best"].campaign_id)
    assert bid["burl"].startswith("http") and "/v1/imp/" in bid["burl"]
    assert bid["burl"] in bid["adm"]


def test_openrtb_no_bid_malformed_and_unknown_key(book: dict[str, Any]) -> None:
    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> list[httpx.Response]:
        too_high = openrtb_body(book["key"])
        too_high["imp"][0]["bidfloor"] = 50
        return [
            await client.post("/openrtb2/auction", json=too_high),
            await client.post("/openrtb2/auction", content=b"{not json"),
            await client.post("/openrtb2/auction", json={"id": "x", "imp": "nope"}),
            await client.post("/openrtb2/auction", json=openrtb_body("nobody")),
            await client.get("/openrtb2/auction"),
        ]

    no_bid, broken, wrong_type, unknown, get = with_client(scenario)
    assert (no_bid.status_code, no_bid.content) == (204, b"")
    assert broken.status_code == 400
    assert wrong_type.status_code == 400 and "imp" in wrong_type.json()["detail"]
    assert unknown.status_code == 401
    assert get.status_code == 405


def test_openrtb_25_consent_locations_are_read(book: dict[str, Any]) -> None:
    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> list[httpx.Response]:
        gdpr_25 = openrtb_body(book["key"], regs={"ext": {"gdpr": 1}})
        gdpr_26_wins = openrtb_body(book["key"], regs={"gdpr": 0, "ext": {"gdpr": 1}})
        return [
            await client.post("/openrtb2/auction", json=gdpr_25),
            await client.post("/openrtb2/auction", json=gdpr_26_wins),
        ]

    no_consent, allowed = with_client(scenario)
    assert no_consent.status_code == 204  # GDPR applies and no TC string: no ad
    assert allowed.status_code == 200


def test_a_cdn_country_header_drives_geo_targeting(book: dict[str, Any]) -> None:
    german = make_line_item(make_campaign(), "9.00")
    services.update_line_item(german, countries=["DE"])
    publish_snapshot()

    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> list[int]:
        # regs.gdpr = 0: without it, German traffic is GDPR traffic and needs a TC string.
        not_gdpr = ad_body(book["key"], regs={"gdpr": 0})
        de = await client.post("/v1/ad", json=not_gdpr, headers={"cf-ipcountry": "DE"})
        us = await client.post("/v1/ad", json=ad_body(book["key"]), headers={"cf-ipcountry": "US"})
        return [de.json()["decisions"][0]["line_item"], us.json()["decisions"][0]["line_item"]]

    de, us = with_client(scenario, config(country_header="cf-ipcountry"))
    assert de == german.pk
    assert us == book["best"].pk


def test_frequency_cap_on_a_pseudonymous_id(book: dict[str, Any], redis_client: Redis) -> None:
    services.update_line_item(book["best"], frequency_caps=[{"count": 2, "period": "day"}])
    publish_snapshot()

    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> list[int]:
        winners = []
        for _ in range(3):
            body = ad_body(book["key"], user={"id": "reader-42"})
            response = await client.post("/v1/ad", json=body)
            winners.append(response.json()["decisions"][0]["line_item"])
            await app.sink.drain()  # the counters are written with the next batch
        return winners

    winners = with_client(scenario)
    assert winners == [book["best"].pk, book["best"].pk, book["other"].pk]
    events = stream_events(redis_client)
    # Only the keyed hash is stored, never the id as sent.
    assert all("reader-42" not in (e.u or "") for e in events)
    assert {e.u for e in events if e.t == "req"} - {""}
    assert any(e.t == "loss" and e.r == "frequency_cap" for e in events)


def test_explain_needs_a_staff_token_and_names_every_reason(book: dict[str, Any]) -> None:
    staff = get_user_model().objects.create_user("ops", is_staff=True)
    _, key = ApiToken.issue(staff, "explain")
    nobody = get_user_model().objects.create_user("nobody")
    _, other_key = ApiToken.issue(nobody, "nope")
    german = make_line_item(make_campaign(), "9.00")
    services.update_line_item(german, countries=["DE"])
    publish_snapshot()

    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> list[httpx.Response]:
        body = ad_body(book["key"])
        return [
            await client.post("/v1/ad?explain=1", json=body),
            await client.post(
                "/v1/ad?explain=1", json=body, headers={"authorization": f"Bearer {other_key}"}
            ),
            await client.post(
                "/v1/ad?explain=1", json=body, headers={"authorization": f"Bearer {key}"}
            ),
        ]

    anonymous, not_staff, staff_response = with_client(scenario)
    assert anonymous.status_code == 403
    assert not_staff.status_code == 403
    assert staff_response.status_code == 200
    [report] = staff_response.json()["explain"]
    results = {line["line_item"]: line["result"] for line in report["line_items"]}
    assert results[book["best"].pk] == "won"
    assert results[book["other"].pk] == "outbid"
    assert results[german.pk] == "country"


def test_budget_exhaustion_stops_delivery_within_two_seconds(redis_client: Redis) -> None:
    placement = make_placement(floor=Decimal("4.99"))
    campaign = make_campaign(daily_budget=Decimal("0.01"))  # two impressions at 5.00 CPM
    make_line_item(campaign, "5.00")
    publish_snapshot()

    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> tuple[int, float]:
        impressions = 0
        while True:
            response = await client.post("/v1/ad", json=ad_body(placement.key))
            if response.status_code == 204 or impressions > 2:
                return impressions, -1.0
            await client.get(response.json()["decisions"][0]["impression_url"])
            impressions += 1
            if app.keys and campaign.pk in await _exhausted(app):
                break
        exhausted_at = time.monotonic()
        # Serving re-reads the exhausted set with its snapshot check, about once a second.
        while time.monotonic() - exhausted_at < 2.0:
            response = await client.post("/v1/ad", json=ad_body(placement.key))
            if response.status_code == 204:
                return impressions, time.monotonic() - exhausted_at
            await asyncio.sleep(0.05)
        return impressions, -1.0

    impressions, stopped_after = with_client(scenario, config(public_url="http://ads.test"))
    assert impressions == 2
    assert stopped_after >= 0  # a 204 came inside the two seconds


async def _exhausted(app: ServingApp) -> set[int]:
    from serving.keys import day_of

    members = await app.redis.smembers(app.keys.exhausted(day_of(time.time())))
    return {int(m) for m in members}


@pytest.mark.django_db(transaction=True)
def test_a_paused_line_item_stops_as_soon_as_its_snapshot_publishes(book: dict[str, Any]) -> None:
    def pause_and_publish() -> None:
        services.pause_line_item(book["best"])
        publish_snapshot()

    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> list[int]:
        before = (await client.post("/v1/ad", json=ad_body(book["key"]))).json()
        await asyncio.to_thread(pause_and_publish)
        await app.store.refresh()
        after = (await client.post("/v1/ad", json=ad_body(book["key"]))).json()
        return [before["decisions"][0]["line_item"], after["decisions"][0]["line_item"]]

    assert with_client(scenario) == [book["best"].pk, book["other"].pk]


def test_one_stream_entry_per_request_with_losses(
    book: dict[str, Any], redis_client: Redis
) -> None:
    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> None:
        await client.post("/v1/ad", json=ad_body(book["key"]))
        await app.sink.drain()

    with_client(scenario)
    assert stream_length(redis_client) == 1
    kinds = [(e.t, e.li, e.r) for e in stream_events(redis_client)]
    assert kinds == [("req", book["best"].pk, ""), ("loss", book["other"].pk, "outbid")]


def test_vast_endpoint_answers_an_empty_vast_on_no_fill(book: dict[str, Any]) -> None:
    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> list[httpx.Response]:
        return [
            await client.get(f"/v1/vast?placement={book['key']}&w=640&h=360"),
            await client.get("/v1/vast?w=640"),
            await client.get(f"/v1/vast?placement={book['key']}&w=abc"),
        ]

    empty, missing, bad = with_client(scenario)
    assert empty.status_code == 200
    assert empty.headers["content-type"] == "application/xml"
    assert empty.content == b'<VAST version="4.2"/>'
    assert missing.status_code == 400 and "placement" in missing.json()["detail"]
    assert bad.status_code == 400 and "`w`" in bad.json()["detail"]


def test_an_external_buyer_competes_and_gets_its_notices(book: dict[str, Any]) -> None:
    from serving.models import Buyer
    from tests.serving.buyer_server import Behaviour, LoopbackBuyer

    with (
        LoopbackBuyer(Behaviour(bid={"price": "4.00"})) as rich,
        LoopbackBuyer(Behaviour(bid={"price": "3.00"})) as poor,
    ):
        for name, buyer in (("rich", rich), ("poor", poor)):
            Buyer.objects.create(name=name, endpoint=buyer.endpoint, timeout_ms=500, currency="USD")
        publish_snapshot()

        async def scenario(client: httpx.AsyncClient, app: ServingApp) -> dict[str, Any]:
            response = await client.post(
                "/v1/ad",
                json=ad_body(
                    book["key"],
                    device={"ip": "203.0.113.99"},
                    user={"id": "reader-7"},
                    regs={"us_privacy": "1YYN"},  # opted out of sale
                    tmax=800,
                ),
            )
            [decision] = response.json()["decisions"]
            await client.get(decision["impression_url"])
            await app.pool.drain_notices()
            # the buyer's markup carries its own click tracking: ours has no destination
            as_click = decision["impression_url"].replace("/v1/imp/", "/v1/click/")
            decision["as_click"] = (await client.get(as_click)).status_code
            return decision

        decision = with_client(scenario, config(public_url="http://ads.test"))

        assert decision["buyer"] == Buyer.objects.get(name="rich").pk
        assert "line_item" not in decision
        assert "click_url" not in decision and decision["as_click"] == 400
        # The buyer saw an OpenRTB 2.6 request, anonymised as the opt-out requires.
        sent = rich.last.body
        assert rich.last.headers["x-openrtb-version"] == "2.6"
        assert sent["device"]["ip"] == "203.0.113.0"
        assert "id" not in sent.get("user", {})
        assert sent["regs"]["us_privacy"] == "1YYN"
        assert sent["tmax"] < 800
        # Win and billing notices to the winner, a loss notice (102: outbid) to the other,
        # with the price in the second-price auction: 3.00 + 0.01, also the loser's minimum
        # to win.
        won = rich.notice_paths()
        assert any(p.startswith("/win?price=3.01&cur=USD&imp=top") for p in won), won
        assert any(p.startswith("/bill?price=3.01") for p in won), won
        assert [p for p in poor.notice_paths() if p.startswith("/loss")] == [
            "/loss?reason=102&min=3.01"
        ]
