import copy
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compliance.policy import BuyerPermission, PrivacySignals
from serving import openrtb
from serving.context import AdContext, DealRequest, Imp, VideoSpec
from serving.openrtb import (
    OpenRtbError,
    ResponseBid,
    build_outbound_request,
    decode_bid_request,
    decode_bid_response,
    encode_bid_response,
    to_context,
)

FX = {"USD": Decimal(1), "EUR": Decimal("1.1"), "GBP": Decimal("1.25")}
BANNER_IMP = {"id": "1", "tagid": "pk-1", "banner": {"w": 300, "h": 250}}


def _body(**fields: Any) -> bytes:
    request: dict[str, Any] = {"id": "req-1", "imp": [copy.deepcopy(BANNER_IMP)]}
    request.update(fields)
    return msgspec.json.encode(request)


def _context(body: bytes, **kwargs: Any) -> AdContext:
    options: dict[str, Any] = {
        "request_id": "our-1",
        "now": 1_700_000_000.0,
        "currency": "USD",
        "fx": FX,
        "sec_gpc": None,
    }
    options.update(kwargs)
    return to_context(decode_bid_request(body), **options)


def _error(body: bytes, **kwargs: Any) -> OpenRtbError:
    with pytest.raises(OpenRtbError) as caught:
        _context(body, **kwargs)
    return caught.value


# --- decoding and mapping -------------------------------------------------------------


def test_minimal_banner_request() -> None:
    ctx = _context(_body())

    assert ctx.source == "openrtb"
    assert ctx.request_id == "our-1"
    assert ctx.placement_key == "pk-1"
    assert ctx.imps == [
        Imp(
            id="1",
            sizes=("300x250",),
            formats=frozenset({"banner"}),
            bidfloor=Decimal(0),
            secure=False,
            tagid="pk-1",
        )
    ]
    assert ctx.at == 2
    assert ctx.channel is None
    assert ctx.privacy == PrivacySignals()
    assert ctx.geo.source == ""
    assert ctx.now == 1_700_000_000.0


@pytest.mark.parametrize(
    ("imp", "sizes", "formats"),
    [
        (
            {"banner": {"w": 300, "h": 250, "format": [{"w": 300, "h": 250}, {"w": 728, "h": 90}]}},
            ("300x250", "728x90"),
            {"banner"},
        ),
        ({"banner": {"format": [{"w": 320, "h": 50}, {"w": 0, "h": 50}]}}, ("320x50",), {"banner"}),
        ({"video": {"mimes": ["video/mp4"], "w": 640, "h": 360}}, ("640x360",), {"video"}),
        ({"audio": {"mimes": ["audio/mp4"]}}, (), {"audio"}),
        ({"native": {"request": "{}", "ver": "1.2"}}, (), {"native"}),
        (
            {"banner": {"w": 300, "h": 250}, "video": {"mimes": ["video/mp4"], "w": 640, "h": 480}},
            ("300x250", "640x480"),
            {"banner", "video"},
        ),
    ],
)
def test_imp_shapes(imp: dict[str, Any], sizes: tuple[str, ...], formats: set[str]) -> None:
    ctx = _context(_body(imp=[{"id": "1", "tagid": "pk", **imp}]))

    assert ctx.imps[0].sizes == sizes
    assert ctx.imps[0].formats == frozenset(formats)


def test_video_imp_maps_onto_video_spec() -> None:
    video = {
        "mimes": ["video/mp4", "video/webm"],
        "minduration": 5,
        "maxduration": 30,
        "protocols": [7, 8],
        "w": 640,
        "h": 360,
        "linearity": 1,
        "skip": 1,
        "startdelay": 0,
        "plcmt": 1,
    }
    imp = _context(_body(imp=[{"id": "v", "tagid": "pk", "video": video}])).imps[0]

    assert imp.video == VideoSpec(
        mimes=("video/mp4", "video/webm"),
        minduration=5,
        maxduration=30,
        protocols=(7, 8),
        w=640,
        h=360,
        linearity=1,
        skip=1,
        startdelay=0,
    )
    assert imp.audio is None


def test_audio_imp_maps_onto_audio_spec() -> None:
    audio = {"mimes": ["audio/mp4"], "minduration": 10, "maxduration": 30, "protocols": [2]}
    imp = _context(_body(imp=[{"id": "a", "tagid": "pk", "audio": audio}])).imps[0]

    assert imp.audio == VideoSpec(
        mimes=("audio/mp4",), minduration=10, maxduration=30, protocols=(2,)
    )


@pytest.mark.parametrize(
    ("request_field", "expected"),
    [
        ('{"ver":"1.2","assets":[]}', '{"ver":"1.2","assets":[]}'),
        ({"ver": "1.2", "assets": []}, '{"ver":"1.2","assets":[]}'),
    ],
)
def test_native_request_passes_through_as_a_string(request_field: Any, expected: str) -> None:
    imp = {"id": "n", "tagid": "pk", "native": {"request": request_field}}

    assert _context(_body(imp=[imp])).imps[0].native_request == expected


def test_pmp_and_deals() -> None:
    pmp = {
        "private_auction": 1,
        "deals": [
            {"id": "d1", "bidfloor": 2.5, "at": 3, "wseat": ["s1"], "wadomain": ["a.com"]},
            {"id": "d2", "bidfloor": 1, "bidfloorcur": "GBP"},
        ],
    }
    imp = _context(_body(imp=[{**BANNER_IMP, "pmp": pmp}])).imps[0]

    assert imp.private_auction is True
    assert imp.deals == (
        DealRequest(id="d1", bidfloor=Decimal("2.5"), at=3, wseat=("s1",), wadomain=("a.com",)),
        DealRequest(id="d2", bidfloor=Decimal("1.25")),
    )


@pytest.mark.parametrize(
    ("floor", "cur", "platform", "expected"),
    [
        (1.5, "USD", "USD", Decimal("1.5")),
        (1.5, "EUR", "USD", Decimal("1.65")),
        (2, "GBP", "USD", Decimal("2.50")),
        (0.1, None, "USD", Decimal("0.1")),  # bidfloorcur defaults to USD
        (3, "EUR", "EUR", Decimal(3)),  # the platform currency needs no rate
        (0, "XYZ", "USD", Decimal(0)),  # no floor: no rate needed
    ],
)
def test_floors_are_converted_into_the_platform_currency(
    floor: float, cur: str | None, platform: str, expected: Decimal
) -> None:
    imp: dict[str, Any] = {**BANNER_IMP, "bidfloor": floor}
    if cur is not None:
        imp["bidfloorcur"] = cur

    assert _context(_body(imp=[imp]), currency=platform).imps[0].bidfloor == expected


def test_floor_decimal_is_exact() -> None:
    imp = _context(_body(imp=[{**BANNER_IMP, "bidfloor": 0.1}])).imps[0]

    assert imp.bidfloor == Decimal("0.1")


@pytest.mark.parametrize(
    ("imps", "path"),
    [
        (
            [BANNER_IMP, {**BANNER_IMP, "id": "2", "bidfloor": 1, "bidfloorcur": "JPY"}],
            "$.imp[1].bidfloorcur",
        ),
        (
            [{**BANNER_IMP, "pmp": {"deals": [{"id": "d", "bidfloor": 1, "bidfloorcur": "XX"}]}}],
            "$.imp[0].pmp.deals[0].bidfloorcur",
        ),
    ],
)
def test_unknown_floor_currency_names_its_path(imps: list[dict[str, Any]], path: str) -> None:
    error = _error(_body(imp=imps))

    assert error.path == path
    assert "Unknown currency" in error.message


def test_a_usd_floor_needs_a_rate_on_a_euro_platform() -> None:
    imp = {**BANNER_IMP, "bidfloor": 1}

    assert _error(_body(imp=[imp]), currency="EUR", fx={}).path == "$.imp[0].bidfloorcur"


@pytest.mark.parametrize(
    ("imps", "placement_key", "expected_key", "error_path"),
    [
        ([BANNER_IMP, {**BANNER_IMP, "id": "2"}], None, "pk-1", None),
        ([BANNER_IMP, {"id": "2", "banner": {"w": 1, "h": 1}}], None, "pk-1", None),
        ([BANNER_IMP, {**BANNER_IMP, "id": "2", "tagid": "other"}], None, None, "$.imp[1].tagid"),
        ([{"id": "1", "banner": {}}], "from-url", "from-url", None),
        ([BANNER_IMP], "from-url", None, "$.imp[0].tagid"),
        ([{"id": "1", "banner": {}}], None, None, "$.imp[0].tagid"),
        ([{"id": "1", "tagid": "", "banner": {}}], None, None, "$.imp[0].tagid"),
    ],
)
def test_placement_key(
    imps: list[dict[str, Any]],
    placement_key: str | None,
    expected_key: str | None,
    error_path: str | None,
) -> None:
    body = _body(imp=imps)
    if error_path:
        assert _error(body, placement_key=placement_key).path == error_path
    else:
        assert _context(body, placement_key=placement_key).placement_key == expected_key


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (b"", "$"),
        (b"{not json", "$"),
        (b'{"id": "x", "imp": [}', "$"),
        (b"[]", "$"),
        (b'{"imp": [{"id": "1", "banner": {}}]}', "$.id"),
        (b'{"id": "", "imp": [{"id": "1", "banner": {}}]}', "$.id"),
        (b'{"id": "x"}', "$.imp"),
        (b'{"id": "x", "imp": []}', "$.imp"),
        (b'{"id": "x", "imp": [{"banner": {}}]}', "$.imp[0].id"),
        (b'{"id": "x", "imp": [{"id": "1"}]}', "$.imp[0]"),
        (
            b'{"id": "x", "imp": [{"id": "1", "banner": {}}, {"id": "1", "banner": {}}]}',
            "$.imp[1].id",
        ),
        (b'{"id": 7, "imp": [{"id": "1", "banner": {}}]}', "$.id"),
        (b'{"id": "x", "imp": [{"id": "1", "banner": {"w": "300"}}]}', "$.imp[0].banner.w"),
        (
            b'{"id": "x", "imp": [{"id": "1", "banner": {}, "bidfloorcur": 5}]}',
            "$.imp[0].bidfloorcur",
        ),
        (b'{"id": "x", "imp": [{"id": "1", "banner": {}, "bidfloor": -1}]}', "$.imp[0].bidfloor"),
        (
            b'{"id": "x", "imp": [{"id": "1", "banner": {}, "bidfloor": "NaN"}]}',
            "$.imp[0].bidfloor",
        ),
        (b'{"id": "x", "imp": [{"id": "1", "banner": {}, "bidfloor": 1e99}]}', "$.imp[0].bidfloor"),
        (
            b'{"id": "x", "imp": [{"id": "1", "banner": {}, "pmp": {"deals": [{"id": "d", '
            b'"bidfloor": -2}]}}]}',
            "$.imp[0].pmp.deals[0].bidfloor",
        ),
        (b'{"id": "x", "imp": [{"id": "1", "native": {}}]}', "$.imp[0].native.request"),
        (b'{"id": "x", "imp": [{"id": "1", "banner": {}}], "regs": {"gdpr": 2}}', "$.regs.gdpr"),
        (b'{"id": "x", "imp": [{"id": "1", "banner": {}}], "device": {"geo": []}}', "$.device.geo"),
        (
            b'{"id": "x", "imp": [{"id": "1", "banner": {}}], "site": {"keywords": 5}}',
            "$.site.keywords",
        ),
        (b'{"id": "x", "imp": [{"id": "1", "banner": {}}], "user": {"ext": "x"}}', "$.user.ext"),
        (b'{"id": "x", "imp": [{"id": "1", "banner": {}}], "test": 2}', "$.test"),
    ],
)
def test_bad_requests_name_their_path(body: bytes, path: str) -> None:
    with pytest.raises(OpenRtbError) as caught:
        decode_bid_request(body)

    assert caught.value.path == path
    assert str(caught.value).endswith(f"- at `{path}`")


def test_too_many_imps() -> None:
    imps = [{"id": str(n), "banner": {}} for n in range(21)]

    with pytest.raises(OpenRtbError) as caught:
        decode_bid_request(_body(imp=imps))

    assert caught.value.path == "$.imp"


def test_unknown_fields_are_ignored() -> None:
    body = _body(
        imp=[{**BANNER_IMP, "rwdd": 1, "metric": [{"type": "viewability"}]}],
        wlang=["en"],
        acat=["IAB1"],
    )

    assert _context(body).imps[0].id == "1"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        # 2.5 locations only
        (
            {
                "regs": {"ext": {"gdpr": 1, "us_privacy": "1YNN", "gpp": "DBABM", "gpp_sid": [2]}},
                "user": {"ext": {"consent": "CO-25"}},
            },
            PrivacySignals(gdpr=1, tc_string="CO-25", us_privacy="1YNN", gpp="DBABM", gpp_sid=(2,)),
        ),
        # 2.6 fields win over the 2.5 copies
        (
            {
                "regs": {
                    "gdpr": 0,
                    "us_privacy": "1NYN",
                    "gpp": "DBACNY",
                    "gpp_sid": [2, 6],
                    "ext": {"gdpr": 1, "us_privacy": "1YNN", "gpp": "DBABM", "gpp_sid": [2]},
                },
                "user": {"consent": "CO-26", "ext": {"consent": "CO-25"}},
            },
            PrivacySignals(
                gdpr=0, tc_string="CO-26", us_privacy="1NYN", gpp="DBACNY", gpp_sid=(2, 6)
            ),
        ),
        # a 2.5 flag sent as a string
        ({"regs": {"ext": {"gdpr": "1"}}}, PrivacySignals(gdpr=1)),
        ({"regs": {"coppa": 1}, "device": {"lmt": 1}}, PrivacySignals(coppa=1, lmt=1)),
        ({"regs": {"ext": {"gpc": "1"}}}, PrivacySignals(gpc="1")),
        ({"regs": {"ext": {"gpc": 1}}}, PrivacySignals(gpc="1")),
    ],
)
def test_privacy_signals(fields: dict[str, Any], expected: PrivacySignals) -> None:
    assert _context(_body(**fields)).privacy == expected


@pytest.mark.parametrize(
    ("header", "ext", "expected"),
    [
        (None, None, None),
        ("1", None, "1"),
        ("1", "0", "1"),  # the header wins when it says 1
        ("0", "1", "1"),
        (None, "1", "1"),
        ("0", None, "0"),
    ],
)
def test_gpc_from_header_or_extension(
    header: str | None, ext: str | None, expected: str | None
) -> None:
    fields = {"regs": {"ext": {"gpc": ext}}} if ext is not None else {}

    assert _context(_body(**fields), sec_gpc=header).privacy.gpc == expected


@pytest.mark.parametrize(
    ("regs", "path"),
    [
        ({"ext": {"gdpr": 3}}, "$.regs.ext.gdpr"),
        ({"ext": {"gdpr": True}}, "$.regs.ext.gdpr"),
        ({"ext": {"us_privacy": 1}}, "$.regs.ext.us_privacy"),
        ({"ext": {"gpp_sid": "2"}}, "$.regs.ext.gpp_sid"),
        ({"ext": {"gpc": [1]}}, "$.regs.ext.gpc"),
    ],
)
def test_bad_25_privacy_fields_name_their_path(regs: dict[str, Any], path: str) -> None:
    assert _error(_body(regs=regs)).path == path


def test_a_bad_25_copy_is_ignored_when_the_26_field_is_there() -> None:
    ctx = _context(_body(regs={"gdpr": 1, "ext": {"gdpr": "yes"}}))

    assert ctx.privacy.gdpr == 1


def test_user_consent_25_bad_type() -> None:
    assert _error(_body(user={"ext": {"consent": 5}})).path == "$.user.ext.consent"


@pytest.mark.parametrize(
    ("geo", "country", "region", "source"),
    [
        ({"country": "USA", "region": "CA"}, "US", "US-CA", "request"),
        ({"country": "usa", "region": "ca"}, "US", "US-CA", "request"),
        ({"country": "DEU", "region": "BY"}, "DE", "DE-BY", "request"),
        ({"country": "GBR"}, "GB", None, "request"),
        ({"country": "US", "region": "US-NY"}, "US", "US-NY", "request"),  # alpha-2 accepted
        ({"country": "XXX", "region": "CA"}, None, None, ""),
        ({"region": "CA"}, None, None, ""),
        ({"region": "US-TX"}, None, "US-TX", ""),
        ({}, None, None, ""),
    ],
)
def test_geo_country_and_region(
    geo: dict[str, Any], country: str | None, region: str | None, source: str
) -> None:
    ctx = _context(_body(device={"geo": geo}))

    assert (ctx.geo.country, ctx.geo.region, ctx.geo.source) == (country, region, source)


def test_geo_coordinates_city_zip() -> None:
    geo = {"country": "FRA", "lat": 48.8566, "lon": 2.3522, "city": "Paris", "zip": "75001"}
    ctx = _context(_body(device={"geo": geo}))

    assert (ctx.geo.lat, ctx.geo.lon, ctx.geo.city, ctx.geo.zip) == (
        48.8566,
        2.3522,
        "Paris",
        "75001",
    )


def test_impossible_coordinates_are_dropped() -> None:
    ctx = _context(_body(device={"geo": {"lat": 91.0, "lon": -181.0}}))

    assert (ctx.geo.lat, ctx.geo.lon) == (None, None)


@pytest.mark.parametrize(
    ("fields", "channel"),
    [
        ({"site": {"page": "https://a.example/"}}, "web"),
        ({"app": {"bundle": "com.example"}}, "app"),
        ({"app": {"bundle": "roku.app"}, "device": {"devicetype": 3}}, "ctv"),
        ({"site": {"domain": "a.example"}, "device": {"devicetype": 7}}, "ctv"),
        ({"site": {"domain": "a.example"}, "device": {"devicetype": 2}}, "web"),
        ({"dooh": {"id": "screen-1"}}, "dooh"),
        ({}, None),
    ],
)
def test_channel(fields: dict[str, Any], channel: str | None) -> None:
    assert _context(_body(**fields)).channel == channel


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"site": {"keywords": "Sports, football ,, NEWS"}}, ("sports", "football", "news")),
        ({"site": {"keywords": ["Sports", " football"]}}, ("sports", "football")),
        ({"site": {"kwarray": ["Sports"], "keywords": "sports,golf"}}, ("sports", "golf")),
        (
            {"app": {"keywords": "games"}, "user": {"keywords": "Games,Puzzles", "kwarray": ["x"]}},
            ("games", "puzzles", "x"),
        ),
        ({}, ()),
    ],
)
def test_keywords_string_or_list(fields: dict[str, Any], expected: tuple[str, ...]) -> None:
    assert _context(_body(**fields)).keywords == expected


@pytest.mark.parametrize(
    ("imp_secure", "page", "expected"),
    [
        (None, "https://a.example/", True),
        (None, "HTTPS://A.EXAMPLE/", True),
        (None, "http://a.example/", False),
        (None, None, False),
        (0, "https://a.example/", False),
        (1, "http://a.example/", True),
    ],
)
def test_secure(imp_secure: int | None, page: str | None, expected: bool) -> None:
    imp = {**BANNER_IMP} if imp_secure is None else {**BANNER_IMP, "secure": imp_secure}
    site = {"page": page} if page else {}

    assert _context(_body(imp=[imp], site=site)).imps[0].secure is expected


@pytest.mark.parametrize(("at", "expected"), [(1, 1), (2, 2), (3, 2), (501, 2)])
def test_auction_type(at: int, expected: int) -> None:
    assert _context(_body(at=at)).at == expected


def test_site_request_fields() -> None:
    body = _body(
        site={
            "id": "s",
            "name": "Example News",
            "domain": "news.example",
            "page": "https://news.example/a",
            "cat": ["IAB12", "IAB12-1"],
            "publisher": {"id": "p"},
            "content": {"cat": ["IAB12-1", "IAB17"]},
        },
        device={
            "ua": "Mozilla/5.0",
            "ip": "203.0.113.9",
            "ipv6": "2001:db8::1",
            "devicetype": 2,
            "make": "Apple",
            "model": "Mac",
            "os": "macOS",
            "osv": "14",
            "ifa": "ifa-1",
            "lmt": 0,
            "language": "en",
        },
        user={
            "id": "u-1",
            "buyeruid": "b-1",
            "data": [
                {"id": "dmp", "segment": [{"id": "s1"}, {"id": "s2"}]},
                {"segment": [{"id": "s1"}]},
            ],
        },
        badv=["bad.example"],
        bcat=["IAB25"],
        bapp=["com.bad"],
        tmax=120,
        cur=["USD", "EUR"],
        test=1,
        source={"tid": "t-1", "schain": {"ver": "1.0", "complete": 1, "nodes": []}},
    )
    ctx = _context(body)

    assert (ctx.domain, ctx.page, ctx.bundle, ctx.property) == (
        "news.example",
        "https://news.example/a",
        None,
        "Example News",
    )
    assert ctx.content_categories == ("IAB12", "IAB12-1", "IAB17")
    assert (ctx.user_id, ctx.buyer_uid, ctx.segments) == ("u-1", "b-1", ("s1", "s2"))
    assert (ctx.badv, ctx.bcat, ctx.bapp) == (
        frozenset({"bad.example"}),
        frozenset({"IAB25"}),
        frozenset({"com.bad"}),
    )
    assert (ctx.tmax, ctx.cur, ctx.test) == (120, ("USD", "EUR"), True)
    device = ctx.device
    assert (device.ua, device.ip, device.ipv6, device.devicetype) == (
        "Mozilla/5.0",
        "203.0.113.9",
        "2001:db8::1",
        2,
    )
    assert (device.make, device.model, device.os, device.osv) == ("Apple", "Mac", "macOS", "14")
    assert (device.ifa, device.lmt, device.language) == ("ifa-1", 0, "en")
    assert ctx.source_ext == {"tid": "t-1", "schain": {"ver": "1.0", "complete": 1, "nodes": []}}


def test_app_request_fields() -> None:
    body = _body(
        app={
            "bundle": "com.example.game",
            "domain": "example.com",
            "storeurl": "https://store.example/app",
            "cat": ["IAB9"],
            "content": {"cat": ["IAB9-30"]},
        }
    )
    ctx = _context(body)

    assert (ctx.bundle, ctx.domain, ctx.page) == ("com.example.game", "example.com", None)
    assert ctx.content_categories == ("IAB9", "IAB9-30")


def test_schain_from_the_25_extension() -> None:
    ctx = _context(_body(source={"ext": {"schain": {"ver": "1.0"}}}))

    assert ctx.source_ext == {"schain": {"ver": "1.0"}}


def test_explain_flag_is_carried() -> None:
    assert _context(_body(), explain=True).explain is True


# --- outbound requests ----------------------------------------------------------------

FULL_REQUEST = _body(
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


def _outbound(
    ctx: AdContext,
    *,
    send_ids: bool = True,
    precise: bool = True,
    imps: list[Imp] | None = None,
) -> dict[str, Any]:
    raw = build_outbound_request(
        ctx,
        imps=ctx.imps if imps is None else imps,
        permission=BuyerPermission(call=True, send_ids=send_ids, send_precise_geo=precise),
        tmax_ms=180,
        currency="USD",
        request_id="out-1",
    )
    decoded: dict[str, Any] = msgspec.json.decode(raw)
    return decoded


def test_outbound_request_with_every_permission() -> None:
    out = _outbound(_context(FULL_REQUEST, sec_gpc="1"))

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
    out = _outbound(_context(FULL_REQUEST), send_ids=send_ids, precise=precise)
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
            _context(FULL_REQUEST),
            imps=[],
            permission=BuyerPermission(call=False, send_ids=False, send_precise_geo=False),
            tmax_ms=100,
            currency="USD",
            request_id="o",
        )


def test_outbound_needs_an_imp() -> None:
    with pytest.raises(ValueError, match="at least one imp"):
        _outbound(_context(FULL_REQUEST), imps=[])


def test_outbound_without_gpc_sends_no_regs_ext() -> None:
    out = _outbound(_context(FULL_REQUEST))

    assert "ext" not in out["regs"]


def test_outbound_25_privacy_is_forwarded_in_26_locations() -> None:
    body = _body(
        regs={"ext": {"gdpr": 1, "us_privacy": "1YYN", "gpc": "1"}},
        user={"ext": {"consent": "CO-25"}},
        device={"lmt": 1},
    )
    out = _outbound(_context(body), send_ids=False, precise=False)

    assert out["regs"] == {"gdpr": 1, "us_privacy": "1YYN", "ext": {"gpc": "1"}}
    assert out["user"] == {"consent": "CO-25"}
    assert out["device"]["lmt"] == 1


def test_outbound_floor_is_an_exact_json_number() -> None:
    ctx = _context(FULL_REQUEST)
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
        _context(FULL_REQUEST),
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
            _context(FULL_REQUEST),
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
    out = _outbound(_context(FULL_REQUEST), imps=imps)

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
    body = _body(
        app={"bundle": "com.example", "name": "Game", "keywords": "Puzzle"},
        user={"keywords": "likes-cats"},
    )
    ctx = _context(body)

    with_ids = _outbound(ctx)
    without_ids = _outbound(ctx, send_ids=False)

    assert with_ids["app"] == {
        "name": "Game",
        "keywords": "puzzle,likes-cats",
        "kwarray": ["puzzle", "likes-cats"],
        "bundle": "com.example",
    }
    assert without_ids["app"] == {"name": "Game", "bundle": "com.example"}
    assert "site" not in with_ids


def test_outbound_source_tid_defaults_to_our_request_id() -> None:
    out = _outbound(_context(_body()))

    assert out["source"] == {"tid": "our-1"}


def test_outbound_request_is_one_we_can_decode() -> None:
    ctx = _context(FULL_REQUEST)
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


# --- buyers' responses ----------------------------------------------------------------

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


# --- our answer -----------------------------------------------------------------------


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


# --- property: nothing but OpenRtbError escapes ---------------------------------------

_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
_json = st.recursive(
    _json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
_ints = st.integers(min_value=-2, max_value=2000)
_flags = st.sampled_from([0, 1])
_words = st.text(max_size=6) | st.sampled_from(["USA", "us", "DEU", "CA", "US-CA", "https://a.b/"])
_words_list = st.lists(_words, max_size=3)
_floats = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-5, 10**14)
_size = st.fixed_dictionaries({}, optional={"w": _ints, "h": _ints})
_deal = st.fixed_dictionaries(
    {"id": st.text(min_size=1, max_size=4)},
    optional={
        "bidfloor": _floats,
        "bidfloorcur": st.sampled_from(["USD", "EUR", "XYZ"]),
        "at": _ints,
        "wseat": _words_list,
        "wadomain": _words_list,
    },
)
_imp = st.fixed_dictionaries(
    {
        "id": st.sampled_from(["1", "2", "3"]),
        "banner": st.fixed_dictionaries(
            {}, optional={"w": _ints, "h": _ints, "format": st.lists(_size, max_size=3)}
        ),
    },
    optional={
        "tagid": st.sampled_from(["pk", "other"]),
        "video": st.fixed_dictionaries(
            {"mimes": _words_list},
            optional={"w": _ints, "h": _ints, "protocols": st.lists(_ints, max_size=3)},
        ),
        "audio": st.fixed_dictionaries({"mimes": _words_list}),
        "native": st.fixed_dictionaries({"request": _words | st.dictionaries(_words, _json)}),
        "bidfloor": _floats,
        "bidfloorcur": st.sampled_from(["USD", "EUR", "XYZ", ""]),
        "secure": _flags,
        "pmp": st.fixed_dictionaries(
            {}, optional={"private_auction": _flags, "deals": st.lists(_deal, max_size=2)}
        ),
    },
)
_property = st.fixed_dictionaries(
    {},
    optional={
        "domain": _words,
        "page": _words,
        "bundle": _words,
        "cat": _words_list,
        "keywords": _words | _words_list,
        "kwarray": _words_list,
        "content": st.fixed_dictionaries({}, optional={"cat": _words_list}),
    },
)
# The ext objects are typed Any on the wire, so to_context sees whatever arrives there.
_ext = st.dictionaries(
    st.sampled_from(["gdpr", "us_privacy", "gpp", "gpp_sid", "gpc", "consent", "schain"]),
    _json,
    max_size=4,
)
_typed_request = st.fixed_dictionaries(
    {"id": st.just("r"), "imp": st.lists(_imp, min_size=1, max_size=3)},
    optional={
        "site": _property,
        "app": _property,
        "device": st.fixed_dictionaries(
            {},
            optional={
                "devicetype": _ints,
                "lmt": _flags,
                "ip": _words,
                "geo": st.fixed_dictionaries(
                    {},
                    optional={
                        "country": _words,
                        "region": _words,
                        "lat": _floats,
                        "lon": _floats,
                        "zip": _words,
                    },
                ),
            },
        ),
        "user": st.fixed_dictionaries(
            {},
            optional={
                "keywords": _words | _words_list,
                "data": st.lists(
                    st.fixed_dictionaries(
                        {"segment": st.lists(st.fixed_dictionaries({"id": _words}), max_size=2)}
                    ),
                    max_size=2,
                ),
                "ext": _ext,
            },
        ),
        "regs": st.fixed_dictionaries({}, optional={"gdpr": _flags, "ext": _ext}),
        "source": st.fixed_dictionaries({}, optional={"tid": _words, "ext": _ext}),
        "at": _ints,
    },
)


def _decode_and_map(body: bytes) -> None:
    try:
        request = decode_bid_request(body)
        to_context(request, request_id="r", now=0.0, currency="USD", fx=FX, sec_gpc="1")
    except OpenRtbError:
        pass


_property_settings = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_property_settings
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_openrtb_errors(body: bytes) -> None:
    _decode_and_map(body)


@_property_settings
@given(_json)
def test_arbitrary_json_raises_only_openrtb_errors(value: Any) -> None:
    _decode_and_map(msgspec.json.encode(value))


@_property_settings
@given(_typed_request)
def test_well_typed_requests_raise_only_openrtb_errors(value: dict[str, Any]) -> None:
    _decode_and_map(msgspec.json.encode(value))


_response_like = st.fixed_dictionaries(
    {"id": st.just("r")},
    optional={
        "cur": _json_scalars,
        "nbr": _json_scalars,
        "seatbid": st.lists(
            st.fixed_dictionaries(
                {
                    "bid": st.lists(
                        st.fixed_dictionaries(
                            {"id": st.just("b"), "impid": st.just("1"), "price": _json_scalars},
                            optional={"adomain": _json, "w": _json_scalars, "ext": _json},
                        ),
                        max_size=2,
                    )
                },
                optional={"seat": _json_scalars},
            ),
            max_size=2,
        ),
    },
)


@_property_settings
@given(
    st.binary(max_size=200)
    | _json.map(msgspec.json.encode)
    | _response_like.map(msgspec.json.encode)
)
def test_bid_responses_raise_only_openrtb_errors(body: bytes) -> None:
    try:
        response = decode_bid_response(body)
    except OpenRtbError:
        return
    assert all(bid.price.is_finite() for seat in response.seatbid for bid in seat.bid)
