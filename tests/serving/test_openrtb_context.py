"""OpenRTB bid requests mapped onto the context: privacy signals, geo, channel, keywords,
security, auction type, site and app fields."""

from typing import Any

import pytest

from compliance.policy import PrivacySignals
from tests.serving.openrtb_helpers import BANNER_IMP, context_of, error_of, request_body


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
    assert context_of(request_body(**fields)).privacy == expected


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

    assert context_of(request_body(**fields), sec_gpc=header).privacy.gpc == expected


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
    assert error_of(request_body(regs=regs)).path == path


def test_a_bad_25_copy_is_ignored_when_the_26_field_is_there() -> None:
    ctx = context_of(request_body(regs={"gdpr": 1, "ext": {"gdpr": "yes"}}))

    assert ctx.privacy.gdpr == 1


def test_user_consent_25_bad_type() -> None:
    assert error_of(request_body(user={"ext": {"consent": 5}})).path == "$.user.ext.consent"


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
    ctx = context_of(request_body(device={"geo": geo}))

    assert (ctx.geo.country, ctx.geo.region, ctx.geo.source) == (country, region, source)


def test_geo_coordinates_city_zip() -> None:
    geo = {"country": "FRA", "lat": 48.8566, "lon": 2.3522, "city": "Paris", "zip": "75001"}
    ctx = context_of(request_body(device={"geo": geo}))

    assert (ctx.geo.lat, ctx.geo.lon, ctx.geo.city, ctx.geo.zip) == (
        48.8566,
        2.3522,
        "Paris",
        "75001",
    )


def test_impossible_coordinates_are_dropped() -> None:
    ctx = context_of(request_body(device={"geo": {"lat": 91.0, "lon": -181.0}}))

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
    assert context_of(request_body(**fields)).channel == channel


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
    assert context_of(request_body(**fields)).keywords == expected


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

    assert context_of(request_body(imp=[imp], site=site)).imps[0].secure is expected


@pytest.mark.parametrize(("at", "expected"), [(1, 1), (2, 2), (3, 2), (501, 2)])
def test_auction_type(at: int, expected: int) -> None:
    assert context_of(request_body(at=at)).at == expected


def test_site_request_fields() -> None:
    body = request_body(
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
    ctx = context_of(body)

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
    body = request_body(
        app={
            "bundle": "com.example.game",
            "domain": "example.com",
            "storeurl": "https://store.example/app",
            "cat": ["IAB9"],
            "content": {"cat": ["IAB9-30"]},
        }
    )
    ctx = context_of(body)

    assert (ctx.bundle, ctx.domain, ctx.page) == ("com.example.game", "example.com", None)
    assert ctx.content_categories == ("IAB9", "IAB9-30")


def test_schain_from_the_25_extension() -> None:
    ctx = context_of(request_body(source={"ext": {"schain": {"ver": "1.0"}}}))

    assert ctx.source_ext == {"schain": {"ver": "1.0"}}


def test_explain_flag_is_carried() -> None:
    assert context_of(request_body(), explain=True).explain is True
