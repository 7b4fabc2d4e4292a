"""CTV ad pods through the real ASGI app, the real Redis and a loopback buyer: `/v1/vast`
with a pod duration, OpenRTB dynamic and structured pods. The served pod is checked
against the official VAST 4.2 XSD, and each of its ads is tracked and billed as one."""

import re
from decimal import Decimal
from typing import Any

import httpx
import pytest
from redis import Redis

from campaigns import services
from campaigns.snapshot import publish_snapshot
from creatives.models import Creative
from creatives.vast import validate_vast
from serving.app import ServingApp
from tests.creatives.test_vast import xsd  # noqa: F401 - the fixture
from tests.factories import make_campaign, make_placement, make_video_creative
from tests.serving.buyer_server import Behaviour, LoopbackBuyer
from tests.serving.test_app import config, with_client
from tests.serving.test_serving_path import stream_events

pytestmark = pytest.mark.django_db

AD_RE = re.compile(r'<Ad id="(\d+)"[^>]*sequence="(\d+)"')
IMPRESSION_RE = re.compile(r"<Impression[^>]*><!\[CDATA\[([^\]]+)\]\]>")
BUYER_VAST = (
    '<VAST version="4.2"><Ad id="buyer-ad"><InLine><AdSystem>buyer</AdSystem>'
    "<Impression><![CDATA[https://buyer.example/imp?p=${AUCTION_PRICE}]]></Impression>"
    "<AdServingId>b-1</AdServingId><AdTitle>Buyer spot</AdTitle><Creatives>"
    '<Creative><Linear><Duration>00:00:30</Duration><MediaFiles><MediaFile delivery="progressive"'
    ' type="video/mp4" width="1280" height="720"><![CDATA[https://buyer.example/spot.mp4]]>'
    '</MediaFile></MediaFiles></Linear><UniversalAdId idRegistry="ad-id.org">B1</UniversalAdId>'
    "</Creative></Creatives></InLine></Ad></VAST>"
)


def _video_line_item(cpm: str, seconds: float, domain: str, category: str) -> Creative:
    campaign = make_campaign()
    creative = make_video_creative(campaign.advertiser, seconds=seconds)
    # Separation works on each ad's advertiser domain and categories.
    Creative.objects.filter(pk=creative.pk).update(adomain=domain, categories=[category])
    services.create_line_item(
        campaign=campaign, name=f"Spot {domain}", bid=Decimal(cpm),
        sizes=["300x250"], creatives=[creative],
    )  # fmt: skip
    return creative


@pytest.fixture
def break_book() -> dict[str, Any]:
    """Four advertisers' spots: a 15 s at 10 and one at 8 sharing IAB2, two 30 s spots."""
    placement = make_placement()
    book = {
        "key": placement.key,
        "a": _video_line_item("10.00", 15, "a.example", "IAB2"),
        "b": _video_line_item("8.00", 15, "b.example", "IAB2"),
        "c": _video_line_item("6.00", 30, "c.example", "IAB8"),
        "d": _video_line_item("5.00", 30, "d.example", "IAB9"),
    }
    publish_snapshot()
    return book


def _events(client: Redis, kind: str) -> list[Any]:
    return [e for e in stream_events(client) if e.t == kind]


@pytest.mark.usefixtures("xsd")
def test_a_vast_pod_fills_the_break_for_the_most_revenue_and_tracks_each_ad(
    break_book: dict[str, Any], redis_client: Redis
) -> None:
    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> bytes:
        response = await client.get(
            f"/v1/vast?placement={break_book['key']}&w=1280&h=720&poddur=60&maxseq=3"
        )
        assert response.status_code == 200
        for url in IMPRESSION_RE.findall(response.text):
            assert (await client.get(url)).status_code == 200
            assert (await client.get(url)).status_code == 200  # counted once
        await app.sink.drain()
        return response.content

    vast = with_client(scenario, config(public_url="http://ads.test"))

    assert validate_vast(vast) == []
    a, c = break_book["a"], break_book["c"]
    # a + c (16 CPM in 45 s) beat c + d (11 in 60 s); b shares a's category.
    assert AD_RE.findall(vast.decode()) == [(str(a.pk), "1"), (str(c.pk), "2")]
    assert vast.startswith(b"<?xml") and vast.count(b"<AdServingId>") == 2
    imps = _events(redis_client, "imp")
    assert sorted(e.cr for e in imps) == sorted([a.pk, c.pk])
    assert len({e.d for e in imps}) == 2  # a decision each
    # Second price within the pod: a cent over the best bid left out at or below each.
    assert {e.cr: e.cpm for e in imps} == {a.pk: 8_010_000, c.pk: 5_010_000}
    reqs = [e for e in _events(redis_client, "req") if e.li]
    assert sorted(e.cr for e in reqs) == sorted([a.pk, c.pk])


@pytest.mark.usefixtures("xsd")
def test_a_vast_pod_with_exact_durations_and_a_per_second_floor(
    break_book: dict[str, Any],
) -> None:
    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> bytes:
        query = "poddur=90&maxseq=3&rqddurs=30&mincpmpersec=0.19"
        response = await client.get(f"/v1/vast?placement={break_book['key']}&{query}")
        return response.content

    vast = with_client(scenario, config(public_url="http://ads.test"))

    # Only 30 s spots; d (5 CPM) is below 30 x 0.19 = 5.70.
    assert AD_RE.findall(vast.decode()) == [(str(break_book["c"].pk), "1")]
    assert validate_vast(vast) == []


def test_without_a_pod_duration_vast_serves_one_ad(break_book: dict[str, Any]) -> None:
    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> str:
        return (await client.get(f"/v1/vast?placement={break_book['key']}")).text

    vast = with_client(scenario, config(public_url="http://ads.test"))

    assert vast.count("<Ad ") == 1 and "sequence=" not in vast
    assert f'<Ad id="{break_book["a"].pk}"' in vast


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ("poddur=0", "`poddur` must be 1 to 3600"),
        ("poddur=60&maxseq=99", "`maxseq` must be 1 to 30"),
        ("maxseq=3", "`maxseq` needs `poddur`"),
        ("poddur=60&rqddurs=15,x", "`rqddurs` must be"),
        ("poddur=60&mincpmpersec=-1", "`mincpmpersec` must be"),
        ("poddur=60&format=audio", "ad pods (`poddur`) are for video"),
    ],
)
def test_a_bad_pod_query_is_a_400_naming_it(
    break_book: dict[str, Any], query: str, detail: str
) -> None:
    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> httpx.Response:
        return await client.get(f"/v1/vast?placement={break_book['key']}&{query}")

    response = with_client(scenario, config())

    assert response.status_code == 400
    assert detail in response.json()["detail"]


def _bid_request(key: str, *imps: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "pod-req-1",
        "imp": [{"tagid": key, **imp} for imp in imps],
        "app": {"bundle": "com.example.firetv"},
        "device": {"devicetype": 3, "ip": "203.0.113.9", "ua": "AFTMM"},
        "tmax": 800,
    }


def test_an_openrtb_dynamic_pod_mixes_our_spots_and_a_buyers(
    break_book: dict[str, Any],
) -> None:
    from serving.models import Buyer

    behaviour = Behaviour(
        bid={
            "price": 7,
            "dur": 30,
            "adm": BUYER_VAST,
            "mtype": 2,
            "cat": ["IAB7"],
            "w": None,
            "h": None,
        },
        # A second bid without `dur`: it cannot be placed in a pod.
        extra_bids=[{"id": "bid-2", "price": 20, "adomain": ["other.example"], "cat": ["IAB10"]}],
    )
    with LoopbackBuyer(behaviour) as buyer:
        Buyer.objects.create(name="dsp", endpoint=buyer.endpoint, timeout_ms=500, currency="USD")
        publish_snapshot()
        video = {"mimes": ["video/mp4"], "poddur": 60, "maxseq": 3, "maxduration": 30}

        async def scenario(client: httpx.AsyncClient, app: ServingApp) -> dict[str, Any]:
            response = await client.post(
                "/openrtb2/auction",
                json=_bid_request(break_book["key"], {"id": "1", "video": video}),
            )
            assert response.status_code == 200, response.text
            await app.pool.drain_notices()
            return response.json()

        answer = with_client(scenario, config(public_url="http://ads.test"))

        bids = answer["seatbid"][0]["bid"]
        # a (10, 15 s) + the buyer (7, 30 s) = 17 in 45 s: more than a + c (16).
        assert [(b["impid"], b.get("crid"), b["dur"]) for b in bids] == [
            ("1", str(break_book["a"].pk), 15),
            ("1", "creative-1", 30),
        ]
        assert "slotinpod" not in bids[0]
        assert bids[1]["price"] == 6.01  # a cent over c, the best bid left out below it
        assert bids[1]["adm"].startswith('<VAST version="4.2"><Ad id="buyer-ad">')
        # The buyer was asked for the pod as it is and told it won, at its pod price.
        sent = buyer.last.body["imp"][0]["video"]
        assert (sent["poddur"], sent["maxseq"]) == (60, 3)
        assert any(p.startswith("/win?price=6.01") for p in buyer.notice_paths())
        assert [p for p in buyer.notice_paths() if p.startswith("/loss")] == ["/loss?reason=3&min="]


def test_an_openrtb_structured_pod_fills_each_slot_with_separation(
    break_book: dict[str, Any],
) -> None:
    first = {"mimes": ["video/mp4"], "podid": "brk-1", "slotinpod": 1, "maxduration": 15}
    last = {"mimes": ["video/mp4"], "podid": "brk-1", "slotinpod": -1, "maxduration": 30}

    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> httpx.Response:
        body = _bid_request(
            break_book["key"], {"id": "last", "video": last}, {"id": "first", "video": first}
        )
        return await client.post("/openrtb2/auction", json=body)

    response = with_client(scenario, config(public_url="http://ads.test"))

    assert response.status_code == 200, response.text
    bids = response.json()["seatbid"][0]["bid"]
    # a leads (the 15 s slot); b shares its category, so c takes the last slot.
    assert [(b["impid"], b["crid"], b["slotinpod"], b["dur"]) for b in bids] == [
        ("first", str(break_book["a"].pk), 1, 15),
        ("last", str(break_book["c"].pk), -1, 30),
    ]
    assert all(b["mtype"] == 2 and b["adm"].startswith("<?xml") for b in bids)


def test_a_pod_nothing_fits_is_the_empty_vast_and_an_openrtb_no_bid(
    break_book: dict[str, Any],
) -> None:
    video = {"mimes": ["video/mp4"], "poddur": 10}

    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> tuple[bytes, int]:
        vast = await client.get(f"/v1/vast?placement={break_book['key']}&poddur=10")
        rtb = await client.post(
            "/openrtb2/auction", json=_bid_request(break_book["key"], {"id": "1", "video": video})
        )
        return vast.content, rtb.status_code

    vast, status = with_client(scenario, config())

    assert vast == b'<VAST version="4.2"/>'
    assert status == 204


def test_an_openrtb_hybrid_pod_keeps_separation_across_its_parts(
    break_book: dict[str, Any],
) -> None:
    first = {"mimes": ["video/mp4"], "podid": "brk-2", "slotinpod": 1, "maxduration": 15}
    rest = {"mimes": ["video/mp4"], "podid": "brk-2", "poddur": 60, "maxseq": 3}

    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> httpx.Response:
        body = _bid_request(
            break_book["key"], {"id": "rest", "video": rest}, {"id": "first", "video": first}
        )
        return await client.post("/openrtb2/auction", json=body)

    response = with_client(scenario, config(public_url="http://ads.test"))

    assert response.status_code == 200, response.text
    bids = response.json()["seatbid"][0]["bid"]
    # a opens the break; b shares its category, so the dynamic part is c and d.
    assert sorted((b["impid"], b["crid"]) for b in bids) == sorted(
        [
            ("first", str(break_book["a"].pk)),
            ("rest", str(break_book["c"].pk)),
            ("rest", str(break_book["d"].pk)),
        ]
    )
