"""Invalid-traffic filtering (issue 18) through the ASGI app on the real Redis, then the real
ingestion: each rule catches its pattern with its reason, valid traffic passes, and nothing
invalid is billed (no spend, no pacing credit, no revenue, no frequency count)."""

import asyncio
import dataclasses
import time
from decimal import Decimal
from typing import Any

import httpx
import pytest
from django.conf import settings
from redis import Redis

from campaigns import services
from campaigns.models import LineItem, PriorityTier
from campaigns.snapshot import publish_snapshot
from reporting.ingest import ingest_events
from reporting.ivt.models import IvtHourly
from reporting.models import CreativeHourly, DemandHourly, GeoDeviceHourly, HourlyRollup
from serving.app import ServingApp
from serving.ivt.judge import IvtRules
from serving.keys import RedisKeys
from tests.factories import make_campaign, make_line_item, make_placement
from tests.serving.test_app import config, with_client
from tests.serving.test_serving_path import CHROME

pytestmark = pytest.mark.django_db

HUMAN_IP, OTHER_NET_IP = "203.0.113.7", "198.51.100.9"
AWS_IP, GCP_V6 = "3.5.140.2", "2600:1900::1"  # in the shipped starter list
RULES = IvtRules(min_click_ms=50)
HUMAN = {"user-agent": CHROME, "x-real-ip": HUMAN_IP}


def cfg(**rules: Any) -> Any:
    return config(ivt_rules=dataclasses.replace(RULES, **rules), client_ip_header="x-real-ip")


@pytest.fixture
def book() -> dict[str, Any]:
    placement = make_placement()
    campaign = make_campaign()
    cpm = make_line_item(campaign, "2.00")
    publish_snapshot()
    return {"key": placement.key, "placement": placement, "campaign": campaign, "cpm": cpm}


def body(key: str, ip: str = HUMAN_IP, user: str = "reader-1", **device: Any) -> dict[str, Any]:
    return {
        "placement": key,
        "slots": [{"id": "top", "sizes": ["300x250"]}],
        "device": {"ua": CHROME, "ip": ip, **device},
        "user": {"id": user},
    }


async def fill(client: httpx.AsyncClient, key: str, **kw: Any) -> dict[str, Any]:
    answer = await client.post("/v1/ad", json=body(key, **kw))
    assert answer.status_code == 200, answer.headers
    [decision] = answer.json()["decisions"]
    return dict(decision)


def spend(redis_client: Redis, campaign_id: int) -> dict[str, int]:
    """The campaign's day counters (spend in nanos, impressions won, clicks)."""
    prefix = settings.REDIS_KEY_PREFIX
    [day] = [k for k in redis_client.scan_iter(f"{prefix}spend:2*:{campaign_id}")]
    raw: Any = redis_client.hgetall(day)
    return {k.decode(): int(v) for k, v in raw.items() if k in (b"s", b"i", b"k")}


def ivt_rows() -> list[tuple[str, int, int, int, int, str]]:
    return sorted(
        (
            r.reason,
            r.impressions,
            r.clicks,
            r.flagged_impressions,
            r.flagged_clicks,
            str(r.withheld),
        )
        for r in IvtHourly.objects.all()
    )


def test_valid_traffic_is_billed_as_ever(book: dict[str, Any], redis_client: Redis) -> None:
    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> list[int]:
        d = await fill(client, book["key"])
        imp = await client.get(d["impression_url"], headers=HUMAN)
        await asyncio.sleep(0.08)  # past min_click_ms
        click = await client.get(d["click_url"], headers=HUMAN)
        return [imp.status_code, click.status_code]

    assert with_client(scenario, cfg()) == [200, 302]
    assert spend(redis_client, book["campaign"].pk) == {"s": 10_000, "i": 1, "k": 1}
    ingest_events()
    row = HourlyRollup.objects.get(line_item_id=book["cpm"].pk)
    assert (row.impressions, row.clicks, str(row.spend)) == (1, 1, "0.000010000")
    assert ivt_rows() == []


def test_a_listed_crawler_gets_no_ad_and_an_app_http_client_does() -> None:
    # Not caught by our own tokens, only by the crawler-user-agents list.
    from serving.enrich import Enricher

    enricher = Enricher()
    assert enricher.lookup_ua("Mediapartners-Google").is_crawler
    assert enricher.lookup_ua("python-httpx/0.28.1").is_crawler
    # Our own rule over the list: okhttp is most Android apps' HTTP client.
    assert not enricher.lookup_ua("okhttp/4.12.0").is_crawler
    assert not enricher.lookup_ua(CHROME).is_crawler


@pytest.mark.parametrize("address", [AWS_IP, GCP_V6, f"::ffff:{AWS_IP}"])
def test_a_decision_from_a_data_center_gets_no_ad(book: dict[str, Any], address: str) -> None:
    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> httpx.Response:
        return await client.post("/v1/ad", json=body(book["key"], ip=address))

    answer = with_client(scenario, cfg())
    assert (answer.status_code, answer.headers["x-no-fill-reason"]) == (204, "datacenter")


def test_a_decision_from_a_data_center_gets_house_ads_only_when_configured(
    book: dict[str, Any], redis_client: Redis
) -> None:
    house_campaign = make_campaign(priority_tier=PriorityTier.HOUSE)
    services.update_campaign(house_campaign, priority_tier=PriorityTier.HOUSE)
    house = make_line_item(house_campaign, "0.10")
    publish_snapshot()

    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> list[int]:
        dc = await fill(client, book["key"], ip=AWS_IP)
        human = await fill(client, book["key"])
        return [dc["line_item"], human["line_item"]]

    assert with_client(scenario, cfg(datacenter_action="house")) == [house.pk, book["cpm"].pk]


def test_the_data_center_list_and_thresholds_follow_what_is_published(
    book: dict[str, Any], redis_client: Redis
) -> None:
    keys = RedisKeys(settings.REDIS_KEY_PREFIX)
    redis_client.hset(keys.ivt_datacenter, mapping={"text": "203.0.113.0/24\n", "version": "v2"})
    redis_client.set(keys.ivt_rules, '{"datacenter_action": "no_ad", "min_click_ms": 7}')

    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> list[Any]:
        before = await client.post("/v1/ad", json=body(book["key"], ip=AWS_IP))
        await app.refresh_ivt()
        after = await client.post("/v1/ad", json=body(book["key"], ip=HUMAN_IP))
        aws = await client.post("/v1/ad", json=body(book["key"], ip=AWS_IP))
        return [before.status_code, after.status_code, aws.status_code, app.ivt.rules.min_click_ms]

    # The starter list until the new one is read; then only the published one.
    assert with_client(scenario, cfg()) == [204, 204, 200, 7]


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"user-agent": "python-httpx/0.28.1", "x-real-ip": HUMAN_IP}, "crawler"),
        ({"user-agent": CHROME, "x-real-ip": AWS_IP}, "datacenter"),
    ],
)
def test_an_invalid_impression_is_recorded_and_never_billed(
    book: dict[str, Any], redis_client: Redis, headers: dict[str, str], reason: str
) -> None:
    services.update_line_item(book["cpm"], frequency_caps=[{"count": 5, "period": "day"}])
    publish_snapshot()

    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> int:
        d = await fill(client, book["key"])
        return (await client.get(d["impression_url"], headers=headers)).status_code

    assert with_client(scenario, cfg()) == 200
    # The win's charge and its pacing credit are taken back; the cap count too.
    assert spend(redis_client, book["campaign"].pk) == {"s": 0, "i": 0}
    [fc] = list(redis_client.scan_iter(f"{settings.REDIS_KEY_PREFIX}fc:*"))
    assert {int(v) for v in redis_client.hgetall(fc).values()} == {0}
    ingest_events()
    row = HourlyRollup.objects.get(line_item_id=book["cpm"].pk)
    assert (row.requests, row.impressions, str(row.spend)) == (1, 0, "0E-9")
    assert ivt_rows() == [(reason, 1, 0, 0, 0, "0.000010000")]


def test_pre_fetch_and_link_scanner_clicks_never_count(
    book: dict[str, Any], redis_client: Redis
) -> None:
    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> list[int]:
        d = await fill(client, book["key"])
        await client.get(d["impression_url"], headers=HUMAN)
        await asyncio.sleep(0.08)
        prefetch = {**HUMAN, "sec-purpose": "prefetch"}
        codes = [
            (await client.head(d["click_url"], headers=HUMAN)).status_code,
            (await client.get(d["click_url"], headers=prefetch)).status_code,
        ]
        # The user's own click afterwards still counts.
        codes.append((await client.get(d["click_url"], headers=HUMAN)).status_code)
        return codes

    assert with_client(scenario, cfg()) == [302, 302, 302]
    assert spend(redis_client, book["campaign"].pk)["k"] == 1
    ingest_events()
    assert HourlyRollup.objects.get(line_item_id=book["cpm"].pk).clicks == 1
    # Recorded once per decision (the HEAD); the second pre-fetch is a repeat.
    assert ivt_rows() == [("prefetch", 0, 1, 0, 0, "0E-9")]


def test_click_timing_rules(book: dict[str, Any], redis_client: Redis) -> None:
    LineItem.objects.filter(pk=book["cpm"].pk).update(bid_type="cpc", bid=Decimal("0.50"))
    publish_snapshot()

    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> None:
        fast = await fill(client, book["key"])
        await client.get(fast["impression_url"], headers=HUMAN)
        await client.get(fast["click_url"], headers=HUMAN)  # at once: faster than 50 ms
        blind = await fill(client, book["key"])
        await client.get(blind["click_url"], headers=HUMAN)  # its impression never fired

    with_client(scenario, cfg())
    assert spend(redis_client, book["campaign"].pk).get("k", 0) == 0
    assert spend(redis_client, book["campaign"].pk)["s"] == 0
    ingest_events()
    assert HourlyRollup.objects.get(line_item_id=book["cpm"].pk).clicks == 0
    assert ivt_rows() == [
        ("click_without_impression", 0, 1, 0, 0, "0.005000000"),
        ("fast_click", 0, 1, 0, 0, "0.005000000"),
    ]


def test_rate_rules_per_pseudonym_and_per_network(book: dict[str, Any]) -> None:
    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> None:
        for _ in range(3):  # one id, three impressions: the third is over its 2 a minute
            d = await fill(client, book["key"], user="farm-1")
            await client.get(d["impression_url"], headers=HUMAN)
        for n in range(4):  # four ids behind one /24: the fourth is over its 3 a minute
            d = await fill(client, book["key"], user=f"nat-{n}", ip="198.51.100.20")
            await client.get(d["impression_url"], headers={**HUMAN, "x-real-ip": "198.51.100.21"})

    with_client(scenario, cfg(id_imps_per_minute=2, ip_imps_per_minute=3))
    ingest_events()
    assert HourlyRollup.objects.get(line_item_id=book["cpm"].pk).impressions == 5
    assert ivt_rows() == [
        ("id_rate", 1, 0, 0, 0, "0.000010000"),
        ("ip_rate", 1, 0, 0, 0, "0.000010000"),
    ]


def test_an_impression_from_another_network_is_flagged_and_billed(book: dict[str, Any]) -> None:
    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> None:
        d = await fill(client, book["key"])
        await client.get(d["impression_url"], headers={**HUMAN, "x-real-ip": OTHER_NET_IP})

    with_client(scenario, cfg())
    ingest_events()
    assert HourlyRollup.objects.get(line_item_id=book["cpm"].pk).impressions == 1
    assert ivt_rows() == [("network_changed", 0, 0, 1, 0, "0E-9")]


def test_filtering_off_bills_everything(book: dict[str, Any], redis_client: Redis) -> None:
    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> int:
        d = await fill(client, book["key"], ip=AWS_IP)
        return (await client.get(d["impression_url"], headers={"x-real-ip": AWS_IP})).status_code

    assert with_client(scenario, cfg(enabled=False)) == 200
    assert spend(redis_client, book["campaign"].pk) == {"s": 10_000, "i": 1}


def test_a_pseudonym_over_its_limit_stays_invalid_when_the_next_minute_starts(
    book: dict[str, Any], redis_client: Redis
) -> None:
    def new_minute() -> None:  # what the next minute looks like to the rate counters
        prefix = settings.REDIS_KEY_PREFIX
        for key in redis_client.scan_iter(f"{prefix}ivt:u:*:60:*"):
            redis_client.delete(key)

    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> None:
        for _ in range(3):  # the third is over its 2 a minute
            d = await fill(client, book["key"], user="farm-1")
            await client.get(d["impression_url"], headers=HUMAN)
        new_minute()
        held = await fill(client, book["key"], user="farm-1")
        await client.get(held["impression_url"], headers=HUMAN)
        other = await fill(client, book["key"], user="reader-2")  # same /24, another id
        await client.get(other["impression_url"], headers=HUMAN)

    started = time.time()
    with_client(scenario, cfg(id_imps_per_minute=2))
    ingest_events()
    # Billed: the farm's first two and the other reader's; the held one is id_rate too.
    assert HourlyRollup.objects.get(line_item_id=book["cpm"].pk).impressions == 3
    assert ivt_rows() == [("id_rate", 2, 0, 0, 0, "0.000020000")]
    assert spend(redis_client, book["campaign"].pk)["i"] == 3
    # Queued once, from when it was first held, for the refund of what it was billed before.
    held: Any = redis_client.zrange(RedisKeys(settings.REDIS_KEY_PREFIX).ivt_held, 0, -1,
                                    withscores=True)  # fmt: skip
    [(farm, since)] = held  # farm-1's pseudonym; reader-2 was never held
    assert started * 1000 <= since <= time.time() * 1000
    hold = RedisKeys(settings.REDIS_KEY_PREFIX).ivt_hold(farm.decode())
    assert redis_client.get(hold) == b"id_rate"


def test_without_a_hold_a_pseudonym_counts_again_under_its_limits(
    book: dict[str, Any], redis_client: Redis
) -> None:
    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> None:
        for _ in range(3):
            d = await fill(client, book["key"], user="farm-1")
            await client.get(d["impression_url"], headers=HUMAN)
        for key in redis_client.scan_iter(f"{settings.REDIS_KEY_PREFIX}ivt:u:*:60:*"):
            redis_client.delete(key)
        d = await fill(client, book["key"], user="farm-1")
        await client.get(d["impression_url"], headers=HUMAN)

    with_client(scenario, cfg(id_imps_per_minute=2, id_hold_seconds=0))
    ingest_events()
    assert HourlyRollup.objects.get(line_item_id=book["cpm"].pk).impressions == 3
    assert ivt_rows() == [("id_rate", 1, 0, 0, 0, "0.000010000")]


def test_an_impression_measured_in_a_box_too_small_to_see_is_taken_back(
    book: dict[str, Any], redis_client: Redis
) -> None:
    services.update_line_item(book["cpm"], frequency_caps=[{"count": 5, "period": "day"}])
    publish_snapshot()

    def beacon(d: dict[str, Any], size: str) -> str:
        w, h = size.split("x")
        return d["impression_url"].replace("/v1/imp/", "/v1/ev/") + f"?e=measurable&w={w}&h={h}"

    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> list[int]:
        shown = await fill(client, book["key"], user="reader-1")
        await client.get(shown["impression_url"], headers=HUMAN)
        stuffed = await fill(client, book["key"], user="reader-2")
        await client.get(stuffed["impression_url"], headers=HUMAN)
        answers = [
            (await client.get(beacon(shown, "300x250"), headers=HUMAN)).status_code,
            # a hidden 1x1 frame: the box is clipped to the frame's viewport
            (await client.get(beacon(stuffed, "1x1"), headers=HUMAN)).status_code,
            (await client.get(beacon(stuffed, "0x0"), headers=HUMAN)).status_code,  # a repeat
        ]
        await app.sink.drain()  # the take-back's reply, then the frequency count it undoes
        await app.sink.drain()
        return answers

    assert with_client(scenario, cfg()) == [200, 200, 200]
    # The stuffed impression's spend and pacing credit leave the counters; one stays billed.
    assert spend(redis_client, book["campaign"].pk) == {"s": 10_000, "i": 1}
    caps = {
        k.decode(): {int(v) for v in redis_client.hgetall(k).values()}
        for k in redis_client.scan_iter(f"{settings.REDIS_KEY_PREFIX}fc:*")
    }
    assert sorted(caps.values(), key=sorted) == [{0}, {1}]
    ingest_events()
    row = HourlyRollup.objects.get(line_item_id=book["cpm"].pk)
    assert (row.impressions, str(row.spend)) == (1, "0.000010000")
    assert ivt_rows() == [("pixel_stuffing", 1, 0, 0, 0, "0.000010000")]
    demand = DemandHourly.objects.get(line_item_id=book["cpm"].pk)
    assert (demand.impressions, str(demand.spend), demand.measurable) == (1, "0.000010000", 2)
    geo = GeoDeviceHourly.objects.get(line_item_id=book["cpm"].pk)
    assert (geo.wins, geo.impressions, str(geo.spend)) == (2, 1, "0.000010000")
    creative = CreativeHourly.objects.get(line_item_id=book["cpm"].pk)
    assert (creative.impressions, str(creative.spend)) == (1, "0.000010000")


def test_an_invalid_impression_is_not_taken_back_twice(
    book: dict[str, Any], redis_client: Redis
) -> None:
    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> None:
        d = await fill(client, book["key"])
        await client.get(d["impression_url"], headers={**HUMAN, "x-real-ip": AWS_IP})
        url = d["impression_url"].replace("/v1/imp/", "/v1/ev/") + "?e=measurable&w=1&h=1"
        await client.get(url, headers=HUMAN)
        await app.sink.drain()

    with_client(scenario, cfg())
    assert spend(redis_client, book["campaign"].pk) == {"s": 0, "i": 0}
    ingest_events()
    assert ivt_rows() == [("datacenter", 1, 0, 0, 0, "0.000010000")]


def test_a_measured_size_is_not_judged_with_filtering_off(
    book: dict[str, Any], redis_client: Redis
) -> None:
    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> None:
        d = await fill(client, book["key"])
        await client.get(d["impression_url"], headers=HUMAN)
        url = d["impression_url"].replace("/v1/imp/", "/v1/ev/") + "?e=measurable&w=1&h=1"
        await client.get(url, headers=HUMAN)
        await app.sink.drain()

    with_client(scenario, cfg(enabled=False))
    assert spend(redis_client, book["campaign"].pk) == {"s": 10_000, "i": 1}
    ingest_events()
    assert HourlyRollup.objects.get(line_item_id=book["cpm"].pk).impressions == 1
    assert ivt_rows() == []
