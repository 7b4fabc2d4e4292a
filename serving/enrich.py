"""Enrichment: what the orchestrator knows of place and device before targeting runs.

A request rarely says where it comes from or what it runs on, so the orchestrator fills
`AdContext.geo` and `AdContext.device` from what it can trust, most trusted first:

- geo: fields the request itself gave are kept; then a country (and region) header set by
  the CDN in front of us, read only when one is configured, because any client can send
  such a header when nothing strips it; then a MaxMind GeoIP2/GeoLite2 Country or City
  database looked up by IP. A less trusted source only fills fields still empty, and only
  when it agrees with what is already known (a header saying DE and a database saying FR
  are not mixed). Latitude and longitude stay in the process: events never store them.
- device: the user agent, parsed by ua-parser (the Rust-backed resolver when installed)
  plus a few rules of our own for the connected TVs, set-top boxes and Echo devices it
  does not classify, and for crawlers (ours plus the maintained crawler-user-agents list,
  `serving.ivt.crawlers`), which the orchestrator answers with no ad.

This runs on every request, thousands a second, inside a decision that must stay well
under a millisecond of CPU. So the database is opened once (memory-mapped, read by the C
extension); a described user agent (30-150 µs to work out) and a decoded address (about
10 µs) are cached by their exact strings, which makes a repeat about a microsecond; IP
checks avoid `ipaddress`, whose parsing alone costs several microseconds; and user agents
longer than 512 characters are not parsed at all.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from socket import AF_INET, AF_INET6, inet_ntop, inet_pton
from typing import Any, NamedTuple

import maxminddb
import pycountry
from maxminddb import InvalidDatabaseError
from ua_parser import BestAvailableResolver, Domain, Resolver, load_lazy_builtins
from ua_parser.core import Result

from serving.context import AdContext, DeviceInfo, Geo
from serving.ivt.crawlers import crawler_list
from serving.ivt.networks import V4_MAPPED_PREFIX, AddressRanges

# OpenRTB 2.6 (AdCOM 1.0) device types.
MOBILE_OR_TABLET, PERSONAL_COMPUTER, CONNECTED_TV, PHONE, TABLET = 1, 2, 3, 4, 5
CONNECTED_DEVICE, SET_TOP_BOX = 6, 7

# Longer user agents are garbage or abuse; parsing them would cost unbounded time.
MAX_UA_LENGTH = 512


class GeoDatabaseError(Exception):
    """The configured GeoIP database cannot be used; the app refuses to start."""


@dataclass(frozen=True, slots=True)
class UaInfo:
    """What one user agent string says about the device, derived once and cached."""

    os: str | None = None
    osv: str | None = None
    browser: str | None = None
    make: str | None = None
    model: str | None = None
    devicetype: int | None = None
    is_crawler: bool = False


UNKNOWN_UA = UaInfo()

# Python's `re` scans the whole string for every alternative of a pattern, and a user
# agent is a few hundred characters: the rules below first look for plain lower-case
# substrings (fast) and run a pattern only to confirm a hit or to pull out a model code.

# -- Crawlers ---------------------------------------------------------------------------
# ua-parser's "Spider" device family knows the named search and SEO bots; these tokens
# catch the generic rest: crawlers, spiders, headless and audit browsers, HTTP tools.
CRAWLER_TOKENS = (
    "crawler", "spider", "headless", "lighthouse", "python-requests", "python-urllib",
    "curl/", "wget/", "go-http-client", "scrapy", "phantomjs",
)  # fmt: skip
# "...bot" ending a word (Googlebot/2.1, AhrefsBot;), but not the Cubot phone brand.
BOT_WORD_RE = re.compile(r"(?<!cu)bot\b")


def is_crawler_ua(ua: str, ua_lower: str, parsed: Result) -> bool:
    """ua-parser's spiders, our own tokens, then the maintained crawler list (the slowest,
    about 10-50 µs: last, and only for a user agent not seen before)."""
    if parsed.device and parsed.device.family == "Spider":
        return True
    if "bot" in ua_lower and BOT_WORD_RE.search(ua_lower):
        return True
    return contains_any(ua_lower, CRAWLER_TOKENS) or crawler_list().matches(ua)


def contains_any(text: str, tokens: tuple[str, ...]) -> bool:
    # A loop, not any(generator): half the cost, on every token list of every new UA.
    for token in tokens:  # noqa: SIM110
        if token in text:
            return True
    return False


# -- Device types ua-parser does not tell ------------------------------------------------
class DeviceClass(NamedTuple):  # a tuple: built on every cache miss, dataclasses cost more
    devicetype: int | None
    make: str | None = None  # from our rules; ua-parser's brand otherwise
    model: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceRule:
    """Tokens in a user agent that tell the device type (and maybe maker and model)."""

    tokens: tuple[str, ...]  # lower-case substrings; any one is a hit
    devicetype: int
    make: str | None = None
    # Run on a hit: it must match too, and its first group, if any, is the model code.
    confirm: re.Pattern[str] | None = None

    def classify(self, ua: str, ua_lower: str) -> DeviceClass | None:
        if not contains_any(ua_lower, self.tokens):
            return None
        if self.confirm is None:
            return DeviceClass(self.devicetype, self.make)
        if found := self.confirm.search(ua):
            model = found.group(1) if self.confirm.groups else None
            return DeviceClass(self.devicetype, self.make, model)
        return None


# Checked in this order; the first match wins.
DEVICE_RULES = (
    # Amazon Echo Show/Spot report Android model codes AEO..; audio Echos stream with
    # AlexaMediaPlayer. Before the TV rules: they are not TVs; before the tablet rules:
    # ua-parser files their Silk browser under "Kindle".
    DeviceRule(
        ("aeo", "echo show", "echo spot", "alexamediaplayer"),
        CONNECTED_DEVICE,
        "Amazon",
        re.compile(r"\b(AEO[A-Z]{2,3}|Echo Show|Echo Spot)\b|AlexaMediaPlayer"),
    ),
    # Google Nest Hub: a Cast device with a screen, not a TV.
    DeviceRule(("devicetype/smartdisplay",), CONNECTED_DEVICE, "Google"),
    # Operator set-top boxes; before the TV rules, as many also speak HbbTV or Android TV.
    DeviceRule(
        ("stb", "set-top", "settop", "freebox", "sky q", "skyq"),
        SET_TOP_BOX,
        confirm=re.compile(r"\bSTB\b|set-?top|Freebox|\bSky ?Q\b", re.IGNORECASE),
    ),
    # Fire TV sticks, cubes and Fire TV edition sets report Android model codes AFT...
    DeviceRule(("aft",), CONNECTED_TV, "Amazon", re.compile(r"\b(AFT[A-Z0-9]{1,8})\b")),
    DeviceRule(("roku",), CONNECTED_TV, "Roku"),
    DeviceRule(("apple tv", "appletv", "tvos"), CONNECTED_TV, "Apple"),
    # Chromecast, Google TV and Android TV boxes; Vizio SmartCast sets carry CrKey too.
    DeviceRule(("crkey", "googletv", "google tv", "androidtv", "android tv"), CONNECTED_TV),
    # Smart TVs: Samsung Tizen ("SMART-TV"), LG webOS/NetCast, HbbTV sets, Sony BRAVIA.
    DeviceRule(
        ("smart-tv", "smarttv", "smart tv", "web0s", "webos", "netcast", "hbbtv", "bravia"),
        CONNECTED_TV,
    ),
    # Game consoles drive a TV screen; buyers trade them as CTV.
    DeviceRule(("xbox", "playstation"), CONNECTED_TV),
)


TABLET_FAMILIES = frozenset({"iPad", "Kindle", "Generic Tablet"})
PHONE_FAMILIES = frozenset({"iPhone", "iPod", "Generic Smartphone", "Generic Feature Phone"})
PHONE_OS = frozenset({"Windows Phone", "BlackBerry OS", "KaiOS", "Symbian OS", "Firefox OS"})
DESKTOP_OS = frozenset(
    {"Windows", "Mac OS X", "Linux", "Ubuntu", "Chrome OS", "Fedora", "Debian", "FreeBSD"}
)
# ua-parser's names where the product's own name is what advertisers target.
OS_NAMES = {"ATV OS X": "tvOS", "Web0S": "webOS"}


def classify_device(ua: str, ua_lower: str, parsed: Result) -> DeviceClass:
    """The OpenRTB device type of a user agent, from our rules first, then ua-parser's."""
    for rule in DEVICE_RULES:
        if found := rule.classify(ua, ua_lower):
            return found
    return DeviceClass(devicetype_from_parser(ua, parsed))


def devicetype_from_parser(ua: str, parsed: Result) -> int | None:
    device, os_family = parsed.device, parsed.os.family if parsed.os else None
    if device and (device.family in TABLET_FAMILIES or device.brand == "Generic_Android_Tablet"):
        return TABLET
    if (device and device.family in PHONE_FAMILIES) or os_family in PHONE_OS:
        return PHONE
    if os_family == "Android":
        return classify_android(ua)
    if os_family == "iOS":  # an app's CFNetwork user agent names neither iPhone nor iPad
        return MOBILE_OR_TABLET
    if os_family in DESKTOP_OS:
        return PERSONAL_COMPUTER
    return None


def classify_android(ua: str) -> int:
    # Android browsers mark phones with "Mobile" and leave it out on tablets; app user
    # agents (Dalvik, okhttp) say neither, so they are only "mobile or tablet".
    if "Mobile" in ua:
        return PHONE
    return TABLET if ua.startswith("Mozilla/") else MOBILE_OR_TABLET


def version_of(major: str | None, minor: str | None, patch: str | None) -> str | None:
    parts = []
    for part in (major, minor, patch):
        if part is None:
            break
        parts.append(part)
    return ".".join(parts) or None


def make_and_model(parsed: Result) -> tuple[str | None, str | None]:
    # ua-parser fills brand with placeholders ("Generic_Android", "Spider") when it knows
    # only the model code, and with a generic model ("Smartphone") when it knows neither.
    device = parsed.device
    if device is None or device.brand in ("Spider", "Generic"):
        return None, None
    make = None if device.brand is None or device.brand.startswith("Generic") else device.brand
    return make, device.model


def describe_ua(ua: str, parsed: Result) -> UaInfo:
    """Turn ua-parser's result plus our own rules into what the context needs."""
    os, agent, ua_lower = parsed.os, parsed.user_agent, ua.lower()
    is_crawler = is_crawler_ua(ua, ua_lower, parsed)
    device = classify_device(ua, ua_lower, parsed)
    make, model = make_and_model(parsed)
    return UaInfo(
        os=OS_NAMES.get(os.family, os.family) if os and os.family != "Other" else None,
        osv=version_of(os.major, os.minor, os.patch) if os else None,
        browser=agent.family if agent and agent.family != "Other" else None,
        make=device.make or make,
        model=device.model or model,
        # A crawler's claimed device is not one we sell.
        devicetype=None if is_crawler else device.devicetype,
        is_crawler=is_crawler,
    )


# -- IP addresses ------------------------------------------------------------------------
# Addresses that say nothing about where a user is: private, shared (CGNAT), loopback,
# link-local, documentation, benchmarking, multicast and reserved space (IANA registries).
NOT_PUBLIC_V4 = AddressRanges.of(
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15",
    "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/3",
)  # fmt: skip
# Only 2000::/3 is global unicast; inside it, protocol assignments, documentation and 6to4.
NOT_PUBLIC_V6 = AddressRanges.of(
    "::/3", "2001::/23", "2001:db8::/32", "2002::/16", "3fff::/20", "4000::/2", "8000::/1",
)  # fmt: skip


def public_ip(raw: str) -> str | None:
    """The address to look up, or None when it is invalid or not publicly routed."""
    try:
        if ":" in raw:
            packed = inet_pton(AF_INET6, raw)
            if packed.startswith(V4_MAPPED_PREFIX):
                packed = packed[12:]
                raw = inet_ntop(AF_INET, packed)
        else:
            packed = inet_pton(AF_INET, raw)
    except (OSError, ValueError):
        return None
    not_public = NOT_PUBLIC_V4 if len(packed) == 4 else NOT_PUBLIC_V6
    return None if int.from_bytes(packed) in not_public else raw


# -- Geo ---------------------------------------------------------------------------------
# Header and database country codes are checked against ISO 3166-1; that drops the CDNs'
# "XX" (unknown) and "T1" (Tor), and legacy "EU"/"A1". Kosovo's "XK" is user-assigned
# but what CDNs and MaxMind send.
COUNTRY_CODES = frozenset(c.alpha_2 for c in pycountry.countries) | {"XK"}
# CloudFront's and Cloudflare's region headers give the ISO 3166-2 subdivision without its
# country ("CA"); other proxies send the full code ("US-CA").
SUBDIVISION_RE = re.compile(r"^(?:([A-Z]{2})-)?([A-Z0-9]{1,3})$")


def has_geo(geo: Geo) -> bool:
    # Spelled out: this runs on every request and a generator costs as much as the rest.
    return not (
        geo.country is None
        and geo.region is None
        and geo.city is None
        and geo.zip is None
        and geo.lat is None
    )


def is_complete(geo: Geo) -> bool:
    return None not in (geo.country, geo.region, geo.city, geo.lat, geo.lon)


def agrees(known: Geo, other: Geo) -> bool:
    """No field known both ways differs: the two describe the same place."""
    return (
        (known.country is None or other.country is None or known.country == other.country)
        and (known.region is None or other.region is None or known.region == other.region)
        and (known.city is None or other.city is None or known.city == other.city)
    )


def merge_geo(known: Geo, other: Geo) -> None:
    """Fill the fields still unknown from a less trusted source that agrees."""
    if not agrees(known, other):
        return
    if known.lat is None and known.lon is None:
        known.lat, known.lon = other.lat, other.lon
    known.country = known.country or other.country
    known.region = known.region or other.region
    known.city = known.city or other.city
    known.source = known.source or other.source


def region_of(country: str, raw: str | None) -> str | None:
    """The ISO 3166-2 code ("US-CA") of a subdivision given with or without its country."""
    match = SUBDIVISION_RE.match(raw.strip().upper()) if raw else None
    if match is None or match.group(1) not in (None, country):
        return None
    return f"{country}-{match.group(2)}"


def geo_from_record(record: Any) -> Geo | None:
    """A GeoIP2 Country/City record as a Geo; None without a valid country."""
    if not isinstance(record, dict):
        return None
    country = (record.get("country") or {}).get("iso_code")
    if country not in COUNTRY_CODES:
        return None
    subdivision = (record.get("subdivisions") or [{}])[0].get("iso_code")
    location = record.get("location") or {}
    return Geo(
        country=country,
        region=f"{country}-{subdivision}" if subdivision else None,
        city=((record.get("city") or {}).get("names") or {}).get("en"),
        lat=location.get("latitude"),
        lon=location.get("longitude"),
        source="geoip",
    )


def open_geo_database(path: str) -> maxminddb.Reader:
    """Open a GeoIP2/GeoLite2 Country or City database once, or say clearly why not."""
    try:
        # MODE_AUTO: the C extension over a memory map when built, pure-Python mmap if not.
        reader = maxminddb.open_database(path, maxminddb.MODE_AUTO)
    except (OSError, ValueError, InvalidDatabaseError) as error:
        raise GeoDatabaseError(f"GeoIP database {path!r} cannot be used: {error}") from error
    kind = reader.metadata().database_type
    if not any(word in kind.lower() for word in ("country", "city", "enterprise")):
        reader.close()
        raise GeoDatabaseError(
            f"GeoIP database {path!r} is a {kind!r} database; use a Country or City one."
        )
    return reader


@cache
def ua_resolver() -> Resolver:
    """ua-parser's fastest resolver (Rust regex when installed), built once per process.

    Building it compiles about a thousand patterns (a third of a second); it holds no
    per-request state, so every Enricher shares it. The lazy builtins give it the
    patterns without compiling them a second time in Python.
    """
    return BestAvailableResolver(load_lazy_builtins())


class Enricher:
    """Fills an AdContext's geo and device in place; one per process, built at startup."""

    def __init__(
        self,
        *,
        geoip_path: str | None = None,
        country_header: str | None = None,
        region_header: str | None = None,
        ua_cache_size: int = 10_000,
        geo_cache_size: int = 10_000,
    ) -> None:
        self._geoip = open_geo_database(geoip_path) if geoip_path else None
        # A Country database adds nothing once the country is known.
        self._geoip_has_cities = self._geoip is not None and "country" not in (
            self._geoip.metadata().database_type.lower()
        )
        # Header names arrive lower-cased; "" means none is configured (nothing is read).
        self._country_header = (country_header or "").lower()
        self._region_header = (region_header or "").lower()
        self._resolver = ua_resolver()
        crawler_list()  # compiled now, at start, not on the first request
        # Caching the finished UaInfo (not ua-parser's result) makes a hit one dict lookup.
        self._cached_lookup = lru_cache(maxsize=ua_cache_size)(self._parse_ua)
        # Decoding a City record costs about as much as the rest of the decision, and the
        # same addresses come back (page views, CTV ad pods). The cached Geo objects are
        # only ever read (merge_geo copies from them), never handed to a context.
        self._geo_of_address = lru_cache(maxsize=geo_cache_size)(self._look_up_address)

    def enrich(self, ctx: AdContext, headers: Mapping[str, str]) -> None:
        """Fill what is unknown of ctx.geo and ctx.device; headers have lower-case names."""
        self.enrich_geo(ctx.geo, ctx.device, headers)
        self.enrich_device(ctx.device)

    def lookup_ua(self, ua: str) -> UaInfo:
        """What a user agent says about its device; the same object for a repeated string."""
        if not ua or len(ua) > MAX_UA_LENGTH:
            return UNKNOWN_UA
        return self._cached_lookup(ua)

    def _parse_ua(self, ua: str) -> UaInfo:
        return describe_ua(ua, self._resolver(ua, Domain.ALL).complete())

    def enrich_device(self, device: DeviceInfo) -> None:
        if not device.ua:
            return
        info = self.lookup_ua(device.ua)
        # What the request says about itself (an app SDK knows its device) is kept.
        device.devicetype = device.devicetype or info.devicetype
        device.os = device.os or info.os
        device.osv = device.osv or info.osv
        device.browser = device.browser or info.browser
        device.make = device.make or info.make
        device.model = device.model or info.model
        device.is_crawler = device.is_crawler or info.is_crawler

    def enrich_geo(self, geo: Geo, device: DeviceInfo, headers: Mapping[str, str]) -> None:
        if has_geo(geo) and not geo.source:
            geo.source = "request"
        if is_complete(geo):
            return
        if self._country_header and (from_header := self.geo_from_headers(headers)):
            merge_geo(geo, from_header)
        if self.geoip_may_add(geo) and (from_database := self.geo_from_ip(device)):
            merge_geo(geo, from_database)

    def geoip_may_add(self, geo: Geo) -> bool:
        if self._geoip is None or is_complete(geo):
            return False
        return geo.country is None or self._geoip_has_cities

    def geo_from_headers(self, headers: Mapping[str, str]) -> Geo | None:
        raw = headers.get(self._country_header)
        country = raw.strip().upper() if raw else None
        if country not in COUNTRY_CODES:
            return None
        region = headers.get(self._region_header) if self._region_header else None
        return Geo(country=country, region=region_of(country, region), source="header")

    def geo_from_ip(self, device: DeviceInfo) -> Geo | None:
        for raw in (device.ip, device.ipv6):
            address = public_ip(raw) if raw else None
            if address is not None and (geo := self._geo_of_address(address)) is not None:
                return geo
        return None

    def _look_up_address(self, address: str) -> Geo | None:
        if self._geoip is None:
            return None
        try:
            return geo_from_record(self._geoip.get(address))
        # An IPv6 address in an IPv4-only database, or a damaged part of the file: this
        # request goes without geo rather than fail.
        except (ValueError, InvalidDatabaseError):
            return None
