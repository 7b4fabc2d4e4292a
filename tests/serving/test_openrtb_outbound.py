"""OpenRTB requests we send to buyers: permissions, anonymisation, floors in the buyer's
currency, media objects."""

from decimal import Decimal

import pytest

from compliance.policy import BuyerPermission
from serving.context import DealRequest, Imp, VideoSpec
from serving.openrtb import build_outbound_request, decode_bid_request, to_context
from tests.serving.openrtb_helpers import BANNER_IMP, FX, context_of, outbound_of, request_body

FULL_REQUEST = request_body(
    imp=[
        {
            **BANNER_IMP,
            "banner": {"w": 300, "h": 250, "format": [{"w": 300, "h": 600}], "pos": 1},
            "bidfloor": 1.5,
            "bidfloorcur": "EUR",
            "secure": 1,
        }
    ],
    site={"domain": "news.example", "page": "https://news.example/a", "cat": ["IAB12"]},
    device={
        "ua": "Mozilla/5.0",
        "ip": "203.0.113.77",
        "ipv6": "2001:db8:abcd:12ff:1:2:3:4",
        "ifa": "ifa-1",
        "lmt": 0,
        "devicetype": 4,
        "geo": {
            "country": "USA",
            "region": "CA",
            "city": "San Francisco",
            "zip": "94107",
            "lat": 37.774929,
            "lon": -122.419416,
        },
    },
    user={
        "id": "u-1",
        "buyeruid": "b-1",
        "consent": "CO-TC",
        "data": [{"segment": [{"id": "s1"}]}],
    },
    regs={"gdpr": 1, "us_privacy": "1YNN", "gpp": "DBABM", "gpp_sid": [2], "coppa": 0},
    source={"tid": "t-1"},
    bcat=["IAB26", "IAB25"],
    badv=["b.example", "a.example"],
    at=1,
)


def test_outbound_request_with_every_permission() -> None:
    out = outbound_of(context_of(FULL_REQUEST, sec_gpc="1"))

    assert out == {
        "id": "out-1",
        "imp": [
            {
                "id": "1",
                "banner": {
                    "w": 300,
                    "h": 250,
                    "format": [{"w": 300, "h": 250}, {"w": 300, "h": 600}],
                    "pos": 1,
                },
                "bidfloor": 1.65,
                "bidfloorcur": "USD",
                "secure": 1,
            }
        ],
        "site": {"domain": "news.example", "cat": ["IAB12"], "page": "https://news.example/a"},
        "device": {
            "ua": "Mozilla/5.0",
            "ip": "203.0.113.77",
            "ipv6": "2001:db8:abcd:12ff:1:2:3:4",
            "devicetype": 4,
            "ifa": "ifa-1",
            "lmt": 0,
            "geo": {
                "lat": 37.774929,
                "lon": -122.419416,
                "country": "USA",
                "region": "CA",
                "city": "San Francisco",
                "zip": "94107",
            },
        },
        "user": {
            "id": "u-1",
            "buyeruid": "b-1",
            "consent": "CO-TC",
            "data": [{"segment": [{"id": "s1"}]}],
        },
        "regs": {
            "coppa": 0,
            "gdpr": 1,
            "us_privacy": "1YNN",
            "gpp": "DBABM",
            "gpp_sid": [2],
            "ext": {"gpc": "1"},
        },
        "at": 1,
        "tmax": 180,
        "cur": ["USD"],
        "bcat": ["IAB25", "IAB26"],
        "badv": ["a.example", "b.example"],
        "source": {"tid": "t-1"},
    }


@pytest.mark.parametrize("send_ids", [True, False])
@pytest.mark.parametrize("precise", [True, False])
def test_outbound_anonymisation(send_ids: bool, precise: bool) -> None:
    # Only the buyer's own permission counts: whether we may personalise is not its business.
    out = outbound_of(context_of(FULL_REQUEST), send_ids=send_ids, precise=precise)
    user, device, geo = out["user"], out["device"], out["device"]["geo"]

    assert ("id" in user, "buyeruid" in user, "data" in user) == (send_ids, send_ids, send_ids)
    assert ("ifa" in device) is send_ids
    assert user["consent"] == "CO-TC"  # the TC string always travels
    full_ip = precise
    assert device["ip"] == ("203.0.113.77" if full_ip else "203.0.113.0")
    assert device["ipv6"] == ("2001:db8:abcd:12ff:1:2:3:4" if full_ip else "2001:db8:abcd:1200::")
    assert (geo["lat"], geo["lon"]) == ((37.774929, -122.419416) if precise else (37.77, -122.42))
    assert ("zip" in geo) is precise
    assert (geo["country"], geo["region"], geo["city"]) == ("USA", "CA", "San Francisco")
    assert device["lmt"] == 0


def test_outbound_refuses_a_buyer_that_may_not_be_called() -> None:
    with pytest.raises(ValueError, match="may not be called"):
        build_outbound_request(
            context_of(FULL_REQUEST),
            imps=[],
            permission=BuyerPermission(call=False, send_ids=False, send_precise_geo=False),
            tmax_ms=100,
            currency="USD",
            request_id="o",
        )


def test_outbound_needs_an_imp() -> None:
    with pytest.raises(ValueError, match="at least one imp"):
        outbound_of(context_of(FULL_REQUEST), imps=[])


def test_outbound_without_gpc_sends_no_regs_ext() -> None:
    out = outbound_of(context_of(FULL_REQUEST))

    assert "ext" not in out["regs"]


def test_outbound_25_privacy_is_forwarded_in_26_locations() -> None:
    body = request_body(
        regs={"ext": {"gdpr": 1, "us_privacy": "1YYN", "gpc": "1"}},
        user={"ext": {"consent": "CO-25"}},
        device={"lmt": 1},
    )
    out = outbound_of(context_of(body), send_ids=False, precise=False)

    assert out["regs"] == {"gdpr": 1, "us_privacy": "1YYN", "ext": {"gpc": "1"}}
    assert out["user"] == {"consent": "CO-25"}
    assert out["device"]["lmt"] == 1


def test_outbound_floor_is_an_exact_json_number() -> None:
    ctx = context_of(FULL_REQUEST)
    imp = Imp(id="9", sizes=("300x250",), bidfloor=Decimal("1.2345"))
    raw = build_outbound_request(
        ctx,
        imps=[imp, Imp(id="10", sizes=(), bidfloor=Decimal("1E+1"))],
        permission=BuyerPermission(True, True, True),
        tmax_ms=100,
        currency="EUR",
        request_id="o",
    )

    assert b'"bidfloor":1.2345,"bidfloorcur":"EUR"' in raw
    assert b'"bidfloor":10,' in raw
    assert b'"cur":["EUR"]' in raw


@pytest.mark.parametrize(
    ("floor", "fx_rate", "written"),
    [
        (Decimal("1.00"), Decimal("1.1"), b"0.9091"),  # 0.90909.. rounded up
        (Decimal("2.20"), Decimal("1.1"), b"2.0000"),
        (Decimal("1.50"), Decimal(1), b"1.50"),
        (Decimal(0), Decimal("1.1"), b"0"),
    ],
)
def test_outbound_floors_in_the_buyers_currency(
    floor: Decimal, fx_rate: Decimal, written: bytes
) -> None:
    deal = DealRequest(id="d", bidfloor=floor)
    raw = build_outbound_request(
        context_of(FULL_REQUEST),
        imps=[Imp(id="1", sizes=("300x250",), bidfloor=floor, deals=(deal,))],
        permission=BuyerPermission(True, True, True),
        tmax_ms=100,
        currency="EUR",
        request_id="o",
        fx_rate=fx_rate,
    )

    assert raw.count(b'"bidfloor":' + written + b',"bidfloorcur":"EUR"') == 2
    # a bid at the written floor clears our own floor once converted back
    assert Decimal(written.decode()) * fx_rate >= floor


@pytest.mark.parametrize("fx_rate", [Decimal(0), Decimal(-1), Decimal("NaN")])
def test_outbound_refuses_a_bad_rate(fx_rate: Decimal) -> None:
    with pytest.raises(ValueError, match="not an exchange rate"):
        build_outbound_request(
            context_of(FULL_REQUEST),
            imps=[Imp(id="1", sizes=())],
            permission=BuyerPermission(True, True, True),
            tmax_ms=100,
            currency="EUR",
            request_id="o",
            fx_rate=fx_rate,
        )


def test_outbound_media_objects() -> None:
    video = VideoSpec(
        mimes=("video/mp4",),
        minduration=5,
        maxduration=30,
        protocols=(7,),
        w=640,
        h=360,
        linearity=1,
        skip=0,
        startdelay=0,
    )
    audio = VideoSpec(mimes=("audio/mp4",), maxduration=30)
    imps = [
        Imp(id="v", sizes=("640x360",), formats=frozenset({"video"}), video=video),
        Imp(id="a", sizes=(), formats=frozenset({"audio"}), audio=audio),
        Imp(id="n", sizes=(), formats=frozenset({"native"}), native_request='{"ver":"1.2"}'),
        Imp(
            id="d",
            sizes=("728x90",),
            secure=False,
            private_auction=True,
            deals=(DealRequest(id="deal", bidfloor=Decimal("3.5"), at=3, wseat=("s",)),),
        ),
    ]
    out = outbound_of(context_of(FULL_REQUEST), imps=imps)

    assert out["imp"][0]["video"] == {
        "mimes": ["video/mp4"],
        "minduration": 5,
        "maxduration": 30,
        "protocols": [7],
        "w": 640,
        "h": 360,
        "linearity": 1,
        "skip": 0,
        "startdelay": 0,
    }
    assert out["imp"][1]["audio"] == {"mimes": ["audio/mp4"], "maxduration": 30}
    assert out["imp"][2]["native"] == {"request": '{"ver":"1.2"}'}
    assert out["imp"][3]["banner"] == {"w": 728, "h": 90, "format": [{"w": 728, "h": 90}]}
    assert out["imp"][3]["secure"] == 0
    assert out["imp"][3]["pmp"] == {
        "private_auction": 1,
        "deals": [{"id": "deal", "bidfloor": 3.5, "bidfloorcur": "USD", "at": 3, "wseat": ["s"]}],
    }
    assert all("tagid" not in imp for imp in out["imp"])


def test_outbound_app_and_keywords() -> None:
    body = request_body(
        app={"bundle": "com.example", "name": "Game", "keywords": "Puzzle"},
        user={"keywords": "likes-cats"},
    )
    ctx = context_of(body)

    with_ids = outbound_of(ctx)
    without_ids = outbound_of(ctx, send_ids=False)

    assert with_ids["app"] == {
        "name": "Game",
        "keywords": "puzzle,likes-cats",
        "kwarray": ["puzzle", "likes-cats"],
        "bundle": "com.example",
    }
    assert without_ids["app"] == {"name": "Game", "bundle": "com.example"}
    assert "site" not in with_ids


def test_outbound_source_tid_defaults_to_our_request_id() -> None:
    out = outbound_of(context_of(request_body()))

    assert out["source"] == {"tid": "our-1"}


def test_outbound_request_is_one_we_can_decode() -> None:
    ctx = context_of(FULL_REQUEST)
    raw = build_outbound_request(
        ctx,
        imps=ctx.imps,
        permission=BuyerPermission(True, False, False),
        tmax_ms=150,
        currency="USD",
        request_id="o-1",
    )

    again = to_context(
        decode_bid_request(raw),
        request_id="o-1",
        now=0.0,
        currency="USD",
        fx=FX,
        sec_gpc=None,
        placement_key="pk-1",
    )
    assert again.imps[0].bidfloor == Decimal("1.65")
    assert again.geo.country == "US"
    assert again.geo.region == "US-CA"
    assert again.privacy.tc_string == "CO-TC"
    assert again.user_id is None
