"""OpenRTB macros in every markup we serve (issue 13 item 4): our own line items' third-party
tags on each door, and buyers' markup and notices, through the ASGI app on the real Redis."""

import html
import re
from decimal import Decimal
from typing import Any

import httpx
import pytest

from campaigns import services
from campaigns.snapshot import publish_snapshot
from serving.app import ServingApp
from tests.factories import make_campaign, make_html5_creative, make_line_item, make_placement
from tests.serving.buyer_server import Behaviour, LoopbackBuyer
from tests.serving.test_app import ad_body, with_client
from tests.serving.test_serving_path import CHROME, openrtb_body

pytestmark = pytest.mark.django_db

MACROS = (
    "id=${AUCTION_ID}&bid=${AUCTION_BID_ID}&imp=${AUCTION_IMP_ID}&seat=${AUCTION_SEAT_ID}"
    "&ad=${AUCTION_AD_ID}&price=${AUCTION_PRICE}&cur=${AUCTION_CURRENCY}&b64=${AUCTION_ID:B64}"
    "&loss=${AUCTION_LOSS}&ts=${AUCTION_IMP_TS}"
)


def fields_of(markup: str) -> dict[str, str]:
    """The macro values the tag's URL was given, read back out of the served markup (the
    tag sits HTML-escaped in the frame's srcdoc)."""
    text = html.unescape(markup)
    query = text[text.index("tag.js?") + len("tag.js?") :]
    query = re.split(r"[\"'<>\s]", query, maxsplit=1)[0]
    return dict(part.split("=", 1) for part in query.split("&"))


@pytest.fixture
def tagged() -> dict[str, Any]:
    """A third-party HTML5 tag with every macro, at 2.50 over a 1.00 line item: 1.01."""
    placement = make_placement()
    campaign = make_campaign()
    tag = f'<script src="https://adserver.example/tag.js?{MACROS}"></script>'
    creative = make_html5_creative(campaign.advertiser, tag=tag)
    best = services.create_line_item(
        campaign=campaign, name="Tagged", bid=Decimal("2.50"),
        sizes=["300x250"], creatives=[creative], placements=[],
    )  # fmt: skip
    make_line_item(campaign, "1.00")
    publish_snapshot()
    return {"key": placement.key, "creative": creative, "best": best}


def test_our_third_party_tag_gets_the_macros_on_v1(tagged: dict[str, Any]) -> None:
    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> dict[str, Any]:
        response = await client.post("/v1/ad", json=ad_body(tagged["key"]))
        result: dict[str, Any] = response.json()
        return result

    answer = with_client(scenario)

    [decision] = answer["decisions"]
    assert "${" not in decision["markup"]
    got = fields_of(decision["markup"])
    assert got["id"] == answer["id"] == got["bid"]  # our request id: no BidRequest here
    assert (got["imp"], got["seat"], got["ad"]) == ("top", "", str(tagged["creative"].pk))
    assert (got["price"], got["cur"], got["loss"]) == ("1.0100", "USD", "")
    assert got["ts"].isdigit()


def test_our_third_party_tag_gets_the_publishers_auction_id_on_openrtb(
    tagged: dict[str, Any],
) -> None:
    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> dict[str, Any]:
        body = openrtb_body(tagged["key"], id="Pub-Auction/9")
        result: dict[str, Any] = (await client.post("/openrtb2/auction", json=body)).json()
        return result

    answer = with_client(scenario)

    [bid] = answer["seatbid"][0]["bid"]
    got = fields_of(bid["adm"])
    assert answer["id"] == got["id"] == "Pub-Auction/9"  # verbatim, as the publisher sent it
    assert got["b64"] == "UHViLUF1Y3Rpb24vOQ"
    assert got["bid"] == answer["bidid"]
    assert (got["imp"], got["seat"], got["ad"]) == ("1", "adsplatform", str(bid["crid"]))
    assert (got["price"], got["cur"]) == (f"{bid['price']:.4f}", answer["cur"])


def test_a_buyers_markup_and_notices_carry_its_bidid_and_the_publishers_auction_id() -> None:
    placement = make_placement()
    from serving.models import Buyer

    adm = "<div>${AUCTION_ID}|${AUCTION_BID_ID}|${AUCTION_PRICE}|${AUCTION_IMP_ID}</div>"
    with LoopbackBuyer(Behaviour(bidid="resp-77", bid={"price": "3.00", "adm": adm})) as buyer:
        Buyer.objects.create(name="b", endpoint=buyer.endpoint, timeout_ms=500, currency="USD")
        publish_snapshot()

        async def scenario(client: httpx.AsyncClient, app: ServingApp) -> dict[str, Any]:
            body = openrtb_body(placement.key, id="pub-42", device={"ua": CHROME})
            result: dict[str, Any] = (await client.post("/openrtb2/auction", json=body)).json()
            await app.pool.drain_notices()
            return result

        answer = with_client(scenario)

        [bid] = answer["seatbid"][0]["bid"]
        # The buyer was asked under the publisher's id: one auction id end to end.
        assert buyer.last.body["id"] == "pub-42"
        assert bid["adm"] == "<div>pub-42|resp-77|0.01|1</div>"  # alone: floor 0 + 0.01
        [win] = [p for p in buyer.notice_paths() if p.startswith("/win")]
        assert win == "/win?price=0.01&cur=USD&imp=1"
