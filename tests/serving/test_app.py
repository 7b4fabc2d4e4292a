"""The serving app through ASGI, on a snapshot published from real rows to the real Redis."""

import dataclasses
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
from django.conf import settings
from redis import Redis

from campaigns.snapshot import publish_snapshot
from serving.app import ServingApp
from serving.config import ServingConfig
from serving.events import decode_events
from serving.keys import RedisKeys
from serving.tokens import TokenSigner
from tests.compliance.tcf_encoder import Core, VendorSection, encode_core
from tests.conftest import run
from tests.factories import make_campaign, make_line_item, make_placement

pytestmark = pytest.mark.django_db


BROWSER = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


def config(**overrides: Any) -> ServingConfig:
    return dataclasses.replace(ServingConfig.from_settings(), **overrides)


def with_client(
    scenario: Callable[[httpx.AsyncClient, ServingApp], Awaitable[Any]],
    cfg: ServingConfig | None = None,
) -> Any:
    async def go() -> Any:
        app = ServingApp(cfg or config())
        await app.startup()
        try:
            transport = httpx.ASGITransport(app=app)
            # A browser's user agent: httpx's own is on the maintained crawler list.
            async with httpx.AsyncClient(
                transport=transport, base_url="http://ads.test", headers={"user-agent": BROWSER}
            ) as client:
                return await scenario(client, app)
        finally:
            await app.shutdown()

    return run(go())


def ad_body(key: str, *sizes: str, **extra: Any) -> dict[str, Any]:
    return {
        "placement": key,
        "slots": [{"id": "top", "sizes": list(sizes or ["300x250"])}],
        **extra,
    }


def stream_length(client: Redis) -> int:
    return int(client.xlen(RedisKeys(settings.REDIS_KEY_PREFIX).events))


@pytest.fixture
def placement_key() -> str:
    placement = make_placement()
    campaign = make_campaign()
    make_line_item(campaign, "2.50")
    make_line_item(campaign, "1.00")
    publish_snapshot()
    return placement.key


def test_an_ad_request_returns_the_winner_with_signed_tracking_urls(placement_key: str) -> None:
    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> httpx.Response:
        return await client.post("/v1/ad", json=ad_body(placement_key))

    response = with_client(scenario)

    assert response.status_code == 200
    assert response.headers["x-request-id"]
    [decision] = response.json()["decisions"]
    assert decision["slot"] == "top"
    assert decision["size"] == "300x250"
    assert decision["impression_url"] in decision["markup"]
    assert decision["click_url"] in decision["markup"]
    token = TokenSigner(settings.SERVING_SIGNING_KEY).verify(
        decision["impression_url"].rsplit("/", 1)[1], "imp"
    )
    assert token.cpm_micros == 1_010_000  # second price: 1.00 + 0.01


@pytest.mark.parametrize(
    ("body", "status", "error", "detail"),
    [
        (b"{nope", 400, "malformed_json", "malformed"),
        (
            b'{"slots": [{"id": "a", "sizes": ["1x1"]}]}',
            400,
            "invalid_request",
            "missing required field `placement`",
        ),
        (
            b'{"placement": "k", "slots": [{"id": "a", "sizes": ["big"]}]}',
            400,
            "invalid_request",
            "$.slots[0].sizes[0]",
        ),
        (
            b'{"placement": "k", "slots": [{"id": "a", "sizes": ["1x1"]}], "regs": {"gdpr": 2}}',
            400,
            "invalid_request",
            "$.regs.gdpr",
        ),
        (
            b'{"placement": "k", "slots": [{"id": "a", "sizes": ["1x1"]},'
            b' {"id": "a", "sizes": ["1x1"]}]}',
            400,
            "invalid_request",
            "slot ids must be unique",
        ),
        (
            b'{"placement": "unknown", "slots": [{"id": "a", "sizes": ["1x1"]}]}',
            401,
            "unknown_placement",
            "not known",
        ),
    ],
)
def test_bad_requests_get_a_reason(
    placement_key: str, body: bytes, status: int, error: str, detail: str
) -> None:
    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> httpx.Response:
        return await client.post("/v1/ad", content=body)

    response = with_client(scenario)

    assert response.status_code == status
    assert response.json()["error"] == error
    assert detail in response.json()["detail"]


def test_oversized_bodies_wrong_methods_and_paths(placement_key: str) -> None:
    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> list[int]:
        big = await client.post("/v1/ad", content=b"x" * (256 * 1024 + 1))
        get = await client.get("/v1/ad")
        missing = await client.get("/v1/nothing")
        return [big.status_code, get.status_code, missing.status_code]

    assert with_client(scenario) == [413, 405, 404]


def test_nothing_eligible_is_204_and_gdpr_without_consent_gets_no_ad(
    placement_key: str, redis_client: Redis
) -> None:
    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> list[httpx.Response]:
        return [
            await client.post("/v1/ad", json=ad_body(placement_key, "728x90")),
            await client.post("/v1/ad", json=ad_body(placement_key, regs={"gdpr": 1})),
        ]

    no_fill, gdpr = with_client(scenario)
    entries: Any = redis_client.xrange(RedisKeys(settings.REDIS_KEY_PREFIX).events)
    ledgers = [decode_events(fields[b"v"])[0].cs for _, fields in entries]
    assert ledgers == ["→ personalised", "gdpr=1 tcf=missing → blocked:gdpr_no_consent"]

    assert (no_fill.status_code, no_fill.headers["x-no-fill-reason"]) == (204, "no_eligible")
    assert (gdpr.status_code, gdpr.headers["x-no-fill-reason"]) == (204, "gdpr_no_consent")
    assert no_fill.content == gdpr.content == b""


def test_gdpr_traffic_with_consent_for_our_vendor_gets_an_ad(placement_key: str) -> None:
    consent = encode_core(
        Core(
            purposes_consent=frozenset({1, 2, 3, 4}),
            vendor_consents=VendorSection(max_id=9999, ids=frozenset({9999})),
        )
    )
    other_vendor = encode_core(Core(purposes_consent=frozenset({1, 2, 3, 4})))

    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> list[httpx.Response]:
        return [
            await client.post(
                "/v1/ad", json=ad_body(placement_key, regs={"gdpr": 1}, user={"consent": tc})
            )
            for tc in (consent, other_vendor)
        ]

    ok, refused = with_client(scenario)

    assert ok.status_code == 200
    assert (refused.status_code, refused.headers["x-no-fill-reason"]) == (204, "gdpr_no_purpose_2")


def test_impressions_and_clicks_are_recorded_once_and_forgeries_not_at_all(
    placement_key: str, redis_client: Redis
) -> None:
    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> dict[str, Any]:
        decision = (await client.post("/v1/ad", json=ad_body(placement_key))).json()["decisions"][0]
        await app.sink.drain()
        after_request = stream_length(redis_client)
        imp, click = decision["impression_url"], decision["click_url"]
        forged = imp[:-3] + ("xyz" if not imp.endswith("xyz") else "abc")
        return {
            "after_request": after_request,
            "imp": [(await client.get(imp)).status_code for _ in range(2)],
            "forged": (await client.get(forged)).status_code,
            "same_token": click == imp.replace("/v1/imp/", "/v1/click/"),
            "click": await client.get(click),
            "gif": (await client.get(imp)).headers["content-type"],
        }

    result = with_client(scenario)

    assert result["after_request"] == 1
    assert result["imp"] == [200, 200]
    assert result["forged"] == 400
    assert result["same_token"]  # one signed token per decision serves all its URLs
    assert result["click"].status_code == 302
    assert result["click"].headers["location"] == "https://shop.example/landing?id=1"
    assert result["gif"] == "image/gif"
    assert stream_length(redis_client) == 3  # request, one impression, one click


def test_expired_tokens_are_not_billed(placement_key: str, redis_client: Redis) -> None:
    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> tuple[int, int]:
        decision = (await client.post("/v1/ad", json=ad_body(placement_key))).json()["decisions"][0]
        imp = await client.get(decision["impression_url"])
        click = await client.get(decision["click_url"])
        return imp.status_code, click.status_code

    # A negative lifetime makes every token already expired.
    assert with_client(scenario, config(token_ttl=-1)) == (410, 302)
    assert stream_length(redis_client) == 1  # only the request


def test_an_exhausted_daily_budget_stops_delivery(redis_client: Redis) -> None:
    placement = make_placement(floor=Decimal("4.99"))
    campaign = make_campaign(daily_budget=Decimal("0.01"))
    make_line_item(campaign, "5.00")
    publish_snapshot()

    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> list[int]:
        # Clears at the 5.00 CPM bid (floor 4.99 + 0.01), charged at the win: two wins
        # spend 0.01. The charge's reply stops this process as soon as its batch is back.
        statuses = []
        for _ in range(2):
            statuses.append((await client.post("/v1/ad", json=ad_body(placement.key))).status_code)
        await app.sink.drain()
        statuses.append((await client.post("/v1/ad", json=ad_body(placement.key))).status_code)
        return statuses

    assert with_client(scenario) == [200, 200, 204]
    keys = RedisKeys(settings.REDIS_KEY_PREFIX)
    assert redis_client.sismember(
        keys.exhausted(time.strftime("%Y%m%d", time.gmtime())), str(campaign.pk)
    )


def test_health_reports_the_snapshot_version(placement_key: str) -> None:
    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> dict[str, Any]:
        return (await client.get("/v1/health")).json()

    assert with_client(scenario) == {"status": "ok", "snapshot": 1}
