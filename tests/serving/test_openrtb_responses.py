"""OpenRTB bid responses: buyers' responses decoded, our answer encoded, the spec's code
values."""

from decimal import Decimal

import msgspec
import pytest

from serving import openrtb
from serving.openrtb import OpenRtbError, ResponseBid, decode_bid_response, encode_bid_response

RESPONSE = b"""{
  "id": "out-1", "bidid": "bb", "cur": "EUR",
  "seatbid": [{"seat": "seat-9", "bid": [{
    "id": "b1", "impid": "1", "price": 1.2345, "adm": "<div/>", "adid": "ad-1",
    "adomain": ["brand.example"], "crid": "cr-1", "cid": "c-1", "cat": ["IAB3"],
    "w": 300, "h": 250, "mtype": 1, "dealid": "d1",
    "nurl": "https://n", "burl": "https://b", "lurl": "https://l", "ext": {"x": 1},
    "unknown_field": true
  }]}]
}"""


def test_decode_bid_response() -> None:
    response = decode_bid_response(RESPONSE)
    bid = response.seatbid[0].bid[0]

    assert (response.id, response.cur, response.bidid, response.seatbid[0].seat) == (
        "out-1",
        "EUR",
        "bb",
        "seat-9",
    )
    assert bid.price == Decimal("1.2345")
    assert str(bid.price) == "1.2345"
    assert (bid.adm, bid.adid, bid.adomain, bid.crid, bid.cid, bid.cat) == (
        "<div/>",
        "ad-1",
        ["brand.example"],
        "cr-1",
        "c-1",
        ["IAB3"],
    )
    assert (bid.w, bid.h, bid.mtype, bid.dealid) == (300, 250, 1, "d1")
    assert (bid.nurl, bid.burl, bid.lurl, bid.ext) == (
        "https://n",
        "https://b",
        "https://l",
        {"x": 1},
    )


@pytest.mark.parametrize(
    ("price", "expected"),
    [
        (b"0.1", "0.1"),
        (b"3", "3"),
        (b"2.50", "2.50"),
        (b"1e-3", "0.001"),
        (b"0.30000000000000004", "0.30000000000000004"),
    ],
)
def test_response_price_is_the_exact_decimal(price: bytes, expected: str) -> None:
    body = b'{"id":"r","seatbid":[{"bid":[{"id":"b","impid":"1","price":' + price + b"}]}]}"

    assert decode_bid_response(body).seatbid[0].bid[0].price == Decimal(expected)


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (b"", "$"),
        (b"<html>", "$"),
        (b'{"id": "r", "seatbid": [', "$"),
        (b'{"seatbid": []}', "$.id"),
        (b'{"id": "r", "seatbid": [{}]}', "$.seatbid[0].bid"),
        (
            b'{"id": "r", "seatbid": [{"bid": [{"id": "b", "price": 1}]}]}',
            "$.seatbid[0].bid[0].impid",
        ),
        (
            b'{"id": "r", "seatbid": [{"bid": [{"id": "b", "impid": "1"}]}]}',
            "$.seatbid[0].bid[0].price",
        ),
        (
            b'{"id": "r", "seatbid": [{"bid": [{"impid": "1", "price": 1}]}]}',
            "$.seatbid[0].bid[0].id",
        ),
        (
            b'{"id": "r", "seatbid": [{"bid": [{"id": "b", "impid": "1", "price": "NaN"}]}]}',
            "$.seatbid[0].bid[0].price",
        ),
        (
            b'{"id": "r", "seatbid": [{"bid": [{"id": "b", "impid": "1", "price": "cheap"}]}]}',
            "$.seatbid[0].bid[0].price",
        ),
        (
            b'{"id": "r", "seatbid": [{"bid": [{"id": "b", "impid": "1", "price": 1, '
            b'"adomain": "brand.example"}]}]}',
            "$.seatbid[0].bid[0].adomain",
        ),
        (
            b'{"id": "r", "seatbid": [{"bid": [{"id": "b", "impid": 1, "price": 1}]}]}',
            "$.seatbid[0].bid[0].impid",
        ),
        (b'{"id": "r", "seatbid": {}}', "$.seatbid"),
    ],
)
def test_bad_responses_name_their_path(body: bytes, path: str) -> None:
    with pytest.raises(OpenRtbError) as caught:
        decode_bid_response(body)

    assert caught.value.path == path


@pytest.mark.parametrize("body", [b"{}", b" { } \n"])
def test_empty_object_response_is_a_no_bid(body: bytes) -> None:
    response = decode_bid_response(body)

    assert (response.id, response.seatbid) == ("", [])


def test_no_bid_with_reason() -> None:
    response = decode_bid_response(b'{"id": "r", "seatbid": [], "nbr": 2}')

    assert (response.seatbid, response.nbr) == ([], openrtb.NBR_INVALID_REQUEST)


def test_encode_bid_response_round_trip() -> None:
    bids = [
        ResponseBid(
            id="b1",
            impid="1",
            price=Decimal("1.2345"),
            adm="<div>ad</div>",
            adomain=("brand.example",),
            crid="cr-1",
            cid="c-1",
            cat=("IAB3",),
            w=300,
            h=250,
            mtype=openrtb.MTYPE_BANNER,
            dealid="d1",
            nurl="https://win?p=${AUCTION_PRICE}",
            burl="https://bill",
            lurl="https://loss?r=${AUCTION_LOSS}",
        ),
        ResponseBid(id="b2", impid="2", price=Decimal("0.5")),
    ]
    raw = encode_bid_response(request_id="req-1", bids=bids, currency="EUR", seat="house")
    response = decode_bid_response(raw)

    assert (response.id, response.cur, response.seatbid[0].seat) == ("req-1", "EUR", "house")
    first, second = response.seatbid[0].bid
    assert (first.id, first.impid, first.price, first.adm) == (
        "b1",
        "1",
        Decimal("1.2345"),
        "<div>ad</div>",
    )
    assert (first.adomain, first.crid, first.cid, first.cat) == (
        ["brand.example"],
        "cr-1",
        "c-1",
        ["IAB3"],
    )
    assert (first.w, first.h, first.mtype, first.dealid) == (300, 250, 1, "d1")
    assert (first.nurl, first.burl, first.lurl) == (
        "https://win?p=${AUCTION_PRICE}",
        "https://bill",
        "https://loss?r=${AUCTION_LOSS}",
    )
    assert (second.id, second.impid, second.price) == ("b2", "2", Decimal("0.5"))
    assert msgspec.json.decode(raw)["seatbid"][0]["bid"][1] == {
        "id": "b2",
        "impid": "2",
        "price": 0.5,
    }


def test_encode_bid_response_writes_plain_numbers() -> None:
    raw = encode_bid_response(
        request_id="r", bids=[ResponseBid(id="b", impid="1", price=Decimal("1E+1"))], currency="USD"
    )

    assert raw == (
        b'{"id":"r","seatbid":[{"seat":"adsplatform","bid":[{"id":"b","impid":"1","price":10}]}],'
        b'"cur":"USD"}'
    )


def test_encode_bid_response_without_bids() -> None:
    raw = encode_bid_response(request_id="r", bids=[], currency="USD")

    assert msgspec.json.decode(raw) == {"id": "r", "seatbid": [], "cur": "USD"}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("NBR_UNKNOWN", 0),
        ("NBR_TECHNICAL", 1),
        ("NBR_INVALID_REQUEST", 2),
        ("NBR_KNOWN_SPIDER", 3),
        ("NBR_NON_HUMAN", 4),
        ("NBR_PROXY", 5),
        ("NBR_UNSUPPORTED_DEVICE", 6),
        ("NBR_BLOCKED_PUBLISHER", 7),
        ("NBR_UNMATCHED_USER", 8),
        ("NBR_BLOCKED_SCHAIN_NODE", 17),
        ("LOSS_WON", 0),
        ("LOSS_INTERNAL", 1),
        ("LOSS_EXPIRED", 2),
        ("LOSS_INVALID_RESPONSE", 3),
        ("LOSS_INVALID_DEAL", 4),
        ("LOSS_INVALID_ADOMAIN", 6),
        ("LOSS_MISSING_MARKUP", 7),
        ("LOSS_BELOW_FLOOR", 100),
        ("LOSS_BELOW_DEAL_FLOOR", 101),
        ("LOSS_OUTBID", 102),
        ("LOSS_OUTBID_BY_DEAL", 103),
        ("LOSS_SEAT_BLOCKED", 104),
        ("LOSS_CREATIVE_FILTERED", 200),
        ("LOSS_SIZE", 203),
        ("LOSS_FORMAT", 204),
        ("LOSS_ADVERTISER_EXCLUSION", 205),
        ("LOSS_NOT_SECURE", 207),
        ("LOSS_CATEGORY_EXCLUSION", 209),
        ("LOSS_NOT_IN_DEAL", 213),
        ("MTYPE_BANNER", 1),
        ("MTYPE_VIDEO", 2),
        ("MTYPE_AUDIO", 3),
        ("MTYPE_NATIVE", 4),
    ],
)
def test_code_values_match_the_spec(name: str, value: int) -> None:
    assert getattr(openrtb, name) == value
