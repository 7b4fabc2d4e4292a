"""Enrichment of geo (request, CDN header, GeoIP database) and device (user agent)."""

from pathlib import Path

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from serving.context import AdContext, DeviceInfo, Geo, Imp
from serving.enrich import (
    MAX_UA_LENGTH,
    UNKNOWN_UA,
    Enricher,
    GeoDatabaseError,
    UaInfo,
    public_ip,
)

LONDON = Geo(country="GB", region="GB-ENG", city="London", lat=51.5142, lon=-0.0931, source="geoip")
MOUNTAIN_VIEW = Geo(
    country="US", region="US-CA", city="Mountain View", lat=37.386, lon=-122.0838, source="geoip"
)


def city_record(country: str, subdivision: str, city: str, lat: float, lon: float) -> dict:
    return {
        "continent": {"code": "EU", "names": {"en": "Europe"}},
        "country": {"iso_code": country, "names": {"en": country}},
        "subdivisions": [{"iso_code": subdivision, "names": {"en": subdivision}}],
        "city": {"names": {"en": city}},
        "location": {"latitude": lat, "longitude": lon, "accuracy_radius": 50},
    }


def country_record(country: str) -> dict:
    return {"country": {"iso_code": country, "names": {"en": country}}}


CITY_NETWORKS = {
    "81.2.69.0/24": city_record("GB", "ENG", "London", 51.5142, -0.0931),
    "2001:4860::/32": city_record("US", "CA", "Mountain View", 37.386, -122.0838),
    # Present in the file on purpose: private addresses must never be looked up anyway.
    "10.0.0.0/8": city_record("FR", "IDF", "Paris", 48.85, 2.35),
}


def write_database(
    path: Path, database_type: str = "GeoIP2-City", networks: dict[str, dict] = CITY_NETWORKS
) -> str:
    writer = MMDBWriter(
        ip_version=6, ipv4_compatible=True, database_type=database_type, languages=["en"],
        description="test",
    )  # fmt: skip
    for network, record in networks.items():
        writer.insert_network(IPSet([network]), record)
    writer.to_db_file(str(path))
    return str(path)


@pytest.fixture(scope="module")
def city_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return write_database(tmp_path_factory.mktemp("geoip") / "city.mmdb")


@pytest.fixture(scope="module")
def enricher(city_db: str) -> Enricher:
    return Enricher(
        geoip_path=city_db,
        country_header="CloudFront-Viewer-Country",
        region_header="cloudfront-viewer-country-region",
    )


def context(ip: str | None = None, ipv6: str | None = None, ua: str | None = None) -> AdContext:
    return AdContext(
        request_id="r1",
        source="v1",
        placement_key="pk",
        imps=[Imp(id="1", sizes=("300x250",))],
        device=DeviceInfo(ua=ua, ip=ip, ipv6=ipv6),
    )


def enriched_geo(enricher: Enricher, headers: dict[str, str] | None = None, **device: str) -> Geo:
    ctx = context(**device)
    enricher.enrich(ctx, headers or {})
    return ctx.geo


# -- GeoIP database -----------------------------------------------------------------------


def test_geoip_looks_up_an_ipv4_address(enricher: Enricher) -> None:
    assert enriched_geo(enricher, ip="81.2.69.160") == LONDON


def test_geoip_looks_up_an_ipv6_address(enricher: Enricher) -> None:
    assert enriched_geo(enricher, ipv6="2001:4860:4860::8888") == MOUNTAIN_VIEW


def test_geoip_looks_up_an_ipv4_mapped_ipv6_address_as_ipv4(enricher: Enricher) -> None:
    assert enriched_geo(enricher, ipv6="::ffff:81.2.69.160") == LONDON


def test_geoip_falls_back_to_ipv6_when_ipv4_is_private(enricher: Enricher) -> None:
    assert enriched_geo(enricher, ip="10.1.2.3", ipv6="2001:4860::1") == MOUNTAIN_VIEW


@pytest.mark.parametrize(
    "ip",
    [
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "127.0.0.1",
        "100.64.0.1",
        "169.254.1.1",
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "2001:db8::1",
        "::ffff:10.0.0.1",
        "not-an-ip",
        "1.2.3",
        "256.1.1.1",
        "010.1.2.3",
        "",
    ],
)
def test_private_and_invalid_ips_give_no_geo(enricher: Enricher, ip: str) -> None:
    assert public_ip(ip) is None
    assert enriched_geo(enricher, ip=ip) == Geo()


def test_public_ips_are_kept_as_given() -> None:
    assert public_ip("8.8.8.8") == "8.8.8.8"
    assert public_ip("2001:4860::1") == "2001:4860::1"
    assert public_ip("::ffff:8.8.8.8") == "8.8.8.8"


def test_a_repeated_address_gives_each_context_its_own_geo(enricher: Enricher) -> None:
    first = context(ip="81.2.69.160")
    enricher.enrich(first, {})
    first.geo.city = "Changed by a later step"

    assert enriched_geo(enricher, ip="81.2.69.160") == LONDON


def test_an_ip_missing_from_the_database_gives_no_geo(enricher: Enricher) -> None:
    assert enriched_geo(enricher, ip="8.8.8.8") == Geo()


def test_a_country_database_gives_the_country(tmp_path: Path) -> None:
    path = write_database(
        tmp_path / "country.mmdb", "GeoLite2-Country", {"81.2.69.0/24": country_record("GB")}
    )
    assert enriched_geo(Enricher(geoip_path=path), ip="81.2.69.160") == Geo(
        country="GB", source="geoip"
    )


def test_a_missing_database_refuses_to_start(tmp_path: Path) -> None:
    path = tmp_path / "missing.mmdb"
    with pytest.raises(GeoDatabaseError, match=f"GeoIP database '{path}' cannot be used"):
        Enricher(geoip_path=str(path))


def test_a_corrupt_database_refuses_to_start(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.mmdb"
    path.write_bytes(b"this is not a MaxMind database" * 100)
    with pytest.raises(GeoDatabaseError, match=f"GeoIP database '{path}' cannot be used"):
        Enricher(geoip_path=str(path))


def test_a_database_of_the_wrong_kind_refuses_to_start(tmp_path: Path) -> None:
    path = write_database(tmp_path / "asn.mmdb", database_type="GeoLite2-ASN")
    with pytest.raises(GeoDatabaseError, match="is a 'GeoLite2-ASN' database"):
        Enricher(geoip_path=path)


# -- Precedence: request, then CDN header, then database -------------------------------------


def test_the_country_header_wins_over_the_database(enricher: Enricher) -> None:
    headers = {"cloudfront-viewer-country": "FR", "cloudfront-viewer-country-region": "IDF"}

    geo = enriched_geo(enricher, headers, ip="81.2.69.160")

    # The database disagrees (GB), so none of its fields are mixed in.
    assert geo == Geo(country="FR", region="FR-IDF", source="header")


def test_the_database_completes_an_agreeing_header(enricher: Enricher) -> None:
    geo = enriched_geo(enricher, {"cloudfront-viewer-country": "GB"}, ip="81.2.69.160")

    assert geo == Geo(
        country="GB", region="GB-ENG", city="London", lat=51.5142, lon=-0.0931, source="header"
    )


def test_request_geo_is_kept(enricher: Enricher) -> None:
    ctx = context(ip="81.2.69.160")
    ctx.geo = Geo(country="DE", region="DE-BY", source="request")

    enricher.enrich(ctx, {"cloudfront-viewer-country": "FR"})

    assert ctx.geo == Geo(country="DE", region="DE-BY", source="request")


def test_request_geo_is_completed_by_an_agreeing_source(enricher: Enricher) -> None:
    ctx = context(ip="81.2.69.160")
    ctx.geo = Geo(country="GB")

    enricher.enrich(ctx, {})

    assert ctx.geo == Geo(
        country="GB", region="GB-ENG", city="London", lat=51.5142, lon=-0.0931, source="request"
    )


@pytest.mark.parametrize("value", ["XX", "T1", "ZZ", "EU", "GBR", "", " "])
def test_invalid_country_headers_are_ignored(enricher: Enricher, value: str) -> None:
    headers = {"cloudfront-viewer-country": value, "cloudfront-viewer-country-region": "CA"}
    assert enriched_geo(enricher, headers, ip="81.2.69.160") == LONDON


@pytest.mark.parametrize(
    ("region", "expected"),
    [("CA", "US-CA"), ("ca", "US-CA"), ("US-CA", "US-CA"), ("DE-BY", None), ("Calif.", None)],
)
def test_region_header_forms(enricher: Enricher, region: str, expected: str | None) -> None:
    headers = {"cloudfront-viewer-country": " us ", "cloudfront-viewer-country-region": region}
    assert enriched_geo(enricher, headers) == Geo(country="US", region=expected, source="header")


def test_headers_are_read_only_when_configured(city_db: str) -> None:
    geo = enriched_geo(Enricher(geoip_path=city_db), {"cf-ipcountry": "FR"}, ip="81.2.69.160")
    assert geo == LONDON


def test_without_a_database_only_headers_give_geo() -> None:
    plain = Enricher(country_header="cf-ipcountry")
    assert enriched_geo(plain, {"cf-ipcountry": "FR"}, ip="81.2.69.160") == Geo(
        country="FR", source="header"
    )
    assert enriched_geo(plain, {}, ip="81.2.69.160") == Geo()


# -- User agents ----------------------------------------------------------------------------

CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
FIRE_TV = (
    "Mozilla/5.0 (Linux; Android 7.1.2; AFTMM Build/NS6271; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/70.0.3538.110 Mobile Safari/537.36"
)
ECHO_SHOW = (
    "Mozilla/5.0 (Linux; Android 9; AEORK Build/PS7271) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Silk/115.3.1 like Chrome/115.0.5790.166 Safari/537.36 Echo Show"
)

USER_AGENTS = [
    # (user agent, devicetype, os, is_crawler)
    (CHROME_WINDOWS, 2, "Windows", False),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
        "Gecko) Version/17.4 Safari/605.1.15",
        2,
        "Mac OS X",
        False,
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
        "like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
        4,
        "iOS",
        False,
    ),
    (
        "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/16.6 Mobile/15E148 Safari/604.1",
        5,
        "iOS",
        False,
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.6367.113 Mobile Safari/537.36",
        4,
        "Android",
        False,
    ),
    (
        "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Safari/537.36",
        5,
        "Android",
        False,
    ),
    (
        "Mozilla/5.0 (Linux; Android 9; KFMAWI) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Silk/122.4.1 like Chrome/122.0.6261.105 Safari/537.36",
        5,
        "Android",
        False,
    ),
    # "Cubot" is a phone brand, not a bot.
    (
        "Mozilla/5.0 (Linux; Android 10; CUBOT X30) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Mobile Safari/537.36",
        4,
        "Android",
        False,
    ),
    # An app's HTTP client says Android but not which kind of device.
    ("Dalvik/2.1.0 (Linux; U; Android 11; SM-G991B Build/RP1A.200720.012)", 1, "Android", False),
    (FIRE_TV, 3, "Android", False),
    ("Dalvik/2.1.0 (Linux; U; Android 9; AFTKA Build/PS7633.3445N)", 3, "Android", False),
    ("Roku/DVP-12.0 (12.0.0.4182-88)", 3, "Roku", False),
    (
        "Mozilla/5.0 (SMART-TV; LINUX; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) "
        "76.0.3809.146/6.0 TV Safari/537.36",
        3,
        "Tizen",
        False,
    ),
    (
        "Mozilla/5.0 (Web0S; Linux/SmartTV) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/79.0.3945.79 Safari/537.36 WebAppManager",
        3,
        "webOS",
        False,
    ),
    (
        "AppleCoreMedia/1.0.0.20K71 (Apple TV; U; CPU OS 16_1 like Mac OS X; en_us)",
        3,
        "tvOS",
        False,
    ),
    (
        "Mozilla/5.0 (Linux; Android 12.0; Build/STTL.240206.002) AppleWebKit/537.36 (KHTML, "
        "like Gecko) Chrome/114.0.0.0 Safari/537.36 CrKey/1.56.500000 DeviceType/AndroidTV",
        3,
        "Chromecast Android",
        False,
    ),
    (
        "Mozilla/5.0 (Linux; Android 9; SHIELD Android TV Build/PPR1.180610.011) "
        "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        3,
        "Android",
        False,
    ),
    ("Mozilla/5.0 (Linux; U; Android 9; en-us; Sky Q) AppleWebKit/537.36", 7, "Android", False),
    (ECHO_SHOW, 6, "Android", False),
    ("AlexaMediaPlayer/2.1.4676.0 (Linux;Android 5.1.1) ExoPlayerLib/1.5.9", 6, "Android", False),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", None, None, True),
    ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", None, None, True),
    ("Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)", None, None, True),
    (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "HeadlessChrome/124.0.0.0 Safari/537.36",
        None,
        "Linux",
        True,
    ),
    (
        "Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like "
        "Gecko) Chrome/120.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse",
        None,
        "Android",
        True,
    ),
    ("curl/8.5.0", None, None, True),
    ("python-requests/2.32.3", None, None, True),
    ("", None, None, False),
]


@pytest.mark.parametrize(("ua", "devicetype", "os", "is_crawler"), USER_AGENTS)
def test_user_agents(
    enricher: Enricher, ua: str, devicetype: int | None, os: str | None, is_crawler: bool
) -> None:
    ctx = context(ua=ua)

    enricher.enrich(ctx, {})

    assert (ctx.device.devicetype, ctx.device.os, ctx.device.is_crawler) == (
        devicetype,
        os,
        is_crawler,
    )


def test_lookup_ua_describes_the_device(enricher: Enricher) -> None:
    assert enricher.lookup_ua(CHROME_WINDOWS) == UaInfo(
        os="Windows", osv="10", browser="Chrome", devicetype=2
    )
    assert enricher.lookup_ua(FIRE_TV) == UaInfo(
        os="Android",
        osv="7.1.2",
        browser="Chrome Mobile WebView",
        make="Amazon",
        model="AFTMM",
        devicetype=3,
    )
    # ua-parser calls the Echo Show's Silk browser a Kindle; the Echo rule names the device.
    assert (enricher.lookup_ua(ECHO_SHOW).make, enricher.lookup_ua(ECHO_SHOW).model) == (
        "Amazon",
        "AEORK",
    )


def test_what_the_request_says_about_the_device_is_kept(enricher: Enricher) -> None:
    ctx = context(ua=FIRE_TV)
    ctx.device.devicetype = 7
    ctx.device.make = "Insignia"

    enricher.enrich(ctx, {})

    assert (ctx.device.devicetype, ctx.device.make, ctx.device.model) == (7, "Insignia", "AFTMM")


def test_a_request_without_user_agent_keeps_an_empty_device(enricher: Enricher) -> None:
    ctx = context()
    enricher.enrich(ctx, {})
    assert ctx.device == DeviceInfo()


def test_a_repeated_user_agent_comes_from_the_cache(enricher: Enricher) -> None:
    first = enricher.lookup_ua(ECHO_SHOW)
    assert enricher.lookup_ua(ECHO_SHOW) is first


def test_a_user_agent_longer_than_the_bound_is_not_parsed(enricher: Enricher) -> None:
    bot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"

    too_long = bot + " " * (MAX_UA_LENGTH + 1 - len(bot))
    at_bound = bot + " " * (MAX_UA_LENGTH - len(bot))

    assert enricher.lookup_ua(too_long) is UNKNOWN_UA
    assert enricher.lookup_ua(at_bound).is_crawler is True
