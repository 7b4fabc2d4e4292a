"""OpenRTB 2.6 on the wire: the bid requests we accept and send, buyers' answers and ours.

Everything here is a pure function over bytes and plain values, because it sits on the
serving path (a few milliseconds, thousands of requests a second): no Django, no I/O.

- Requests are decoded once, by msgspec, into frozen Structs. Unknown fields are ignored,
  as OpenRTB asks of receivers; a wrong type is an `OpenRtbError` naming its JSON path
  (msgspec's own path text), which the front door turns into a 400.
- Exchanges still put privacy signals where OpenRTB 2.5 had them (`regs.ext.gdpr`,
  `user.ext.consent`, ...). We read both locations and the 2.6 field wins, as Prebid
  Server does.
- OpenRTB geo speaks ISO 3166-1 alpha-3 and bare subdivision codes ("CA"); the platform
  speaks alpha-2 and ISO 3166-2 ("US-CA"). The lookup tables are built once, at import.
- Money is `Decimal`: floors and prices are decoded from JSON numbers digit for digit and
  written back as plain JSON numbers.
- Requests to external buyers carry only what the buyer's permission allows: no ids
  without `send_ids`, coarse geo and truncated IPs without `send_precise_geo`.
"""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from functools import lru_cache
from typing import Annotated, Any

import msgspec
import pycountry

from compliance.anonymise import coarse_coordinate, truncate_ip
from compliance.policy import BuyerPermission, Permissions, PrivacySignals
from serving import context
from serving.context import AdContext, DealRequest, DeviceInfo, VideoSpec

# No-bid reason codes (BidResponse.nbr).
NBR_UNKNOWN = 0
NBR_TECHNICAL = 1
NBR_INVALID_REQUEST = 2
NBR_KNOWN_SPIDER = 3
NBR_NON_HUMAN = 4
NBR_PROXY = 5
NBR_UNSUPPORTED_DEVICE = 6
NBR_BLOCKED_PUBLISHER = 7
NBR_UNMATCHED_USER = 8
NBR_DAILY_USER_CAP = 9
NBR_DAILY_DOMAIN_CAP = 10
NBR_ADS_TXT_UNAVAILABLE = 11
NBR_ADS_TXT_VIOLATION = 12
NBR_ADS_CERT_UNAVAILABLE = 13
NBR_ADS_CERT_VIOLATION = 14
NBR_INSUFFICIENT_TIME = 15
NBR_INCOMPLETE_SCHAIN = 16
NBR_BLOCKED_SCHAIN_NODE = 17

# Loss reason codes (${AUCTION_LOSS}), from the OpenRTB 3.0 list that 2.6 refers to.
LOSS_WON = 0
LOSS_INTERNAL = 1
LOSS_EXPIRED = 2
LOSS_INVALID_RESPONSE = 3
LOSS_INVALID_DEAL = 4
LOSS_INVALID_AUCTION_ID = 5
LOSS_INVALID_ADOMAIN = 6
LOSS_MISSING_MARKUP = 7
LOSS_MISSING_CRID = 8
LOSS_MISSING_PRICE = 9
LOSS_MISSING_APPROVAL_DATA = 10
LOSS_BELOW_FLOOR = 100
LOSS_BELOW_DEAL_FLOOR = 101
LOSS_OUTBID = 102
LOSS_OUTBID_BY_DEAL = 103
LOSS_SEAT_BLOCKED = 104
LOSS_CREATIVE_FILTERED = 200
LOSS_CREATIVE_PENDING = 201
LOSS_CREATIVE_DISAPPROVED = 202
LOSS_SIZE = 203
LOSS_FORMAT = 204
LOSS_ADVERTISER_EXCLUSION = 205
LOSS_APP_STORE_EXCLUSION = 206
LOSS_NOT_SECURE = 207
LOSS_LANGUAGE_EXCLUSION = 208
LOSS_CATEGORY_EXCLUSION = 209
LOSS_ATTRIBUTE_EXCLUSION = 210
LOSS_AD_TYPE_EXCLUSION = 211
LOSS_ANIMATION_TOO_LONG = 212
LOSS_NOT_IN_DEAL = 213
LOSS_INVALID_SKADN = 214
LOSS_APP_BUNDLE_EXCLUSION = 215

# Bid.mtype: which imp sub-object the markup answers.
MTYPE_BANNER = 1
MTYPE_VIDEO = 2
MTYPE_AUDIO = 3
MTYPE_NATIVE = 4

MAX_IMPS = 20
# AdCOM device types that are television screens.
CTV_DEVICE_TYPES = frozenset({3, 7})
DOOH_DEVICE_TYPE = 8
# Geo.type: 2 = derived from the IP address.
GEO_TYPE_IP = 2
# Floors sent in a buyer's currency: four decimals, rounded up (see _in_currency).
_FLOOR_PLACES = Decimal("0.0001")
# No real CPM reaches 10^12 in any currency; bigger numbers are garbage that would only
# cost time (a 1E+999999 floor formats as a million digits).
_MONEY_LIMIT = Decimal(10) ** 12


class OpenRtbError(ValueError):
    """A request or response that does not fit OpenRTB 2.6; `path` is the JSON path at fault."""

    def __init__(self, message: str, *, path: str = "$") -> None:
        super().__init__(f"{message} - at `{path}`")
        self.message = message
        self.path = path


# --- Inbound request schema -----------------------------------------------------------

Flag = Annotated[int, msgspec.Meta(ge=0, le=1)]
NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
# 2.5 sends a comma-separated string; some 2.6 senders put the kwarray list here.
Keywords = str | list[str] | None
Ext = dict[str, Any] | None


class _Wire(msgspec.Struct, frozen=True, gc=False):
    # Decoded trees hold no cycles, so the garbage collector need not track them.
    pass


class Format(_Wire, frozen=True):
    w: int | None = None
    h: int | None = None


class Banner(_Wire, frozen=True):
    w: int | None = None
    h: int | None = None
    format: list[Format] = []
    pos: int | None = None


class Video(_Wire, frozen=True):
    mimes: list[str] = []
    minduration: int | None = None
    maxduration: int | None = None
    protocols: list[int] = []
    w: int | None = None
    h: int | None = None
    linearity: int | None = None
    skip: int | None = None
    startdelay: int | None = None
    plcmt: int | None = None
    placement: int | None = None


class Audio(_Wire, frozen=True):
    mimes: list[str] = []
    minduration: int | None = None
    maxduration: int | None = None
    protocols: list[int] = []


class Native(_Wire, frozen=True):
    # A JSON string per the Native Ads spec; some senders inline the object instead.
    request: str | dict[str, Any]
    ver: str | None = None


class Deal(_Wire, frozen=True):
    id: NonEmpty
    bidfloor: Decimal = Decimal(0)
    bidfloorcur: str = "USD"  # does not inherit the imp's currency
    at: int | None = None
    wseat: list[str] = []
    wadomain: list[str] = []


class Pmp(_Wire, frozen=True):
    private_auction: Flag = 0
    deals: list[Deal] = []


class Imp(_Wire, frozen=True):
    id: NonEmpty
    banner: Banner | None = None
    video: Video | None = None
    audio: Audio | None = None
    native: Native | None = None
    bidfloor: Decimal = Decimal(0)
    bidfloorcur: str = "USD"
    secure: Flag | None = None
    tagid: str | None = None
    instl: Flag | None = None
    pmp: Pmp | None = None
    ext: Ext = None


class Publisher(_Wire, frozen=True):
    id: str | None = None


class Content(_Wire, frozen=True):
    cat: list[str] = []


class _Property(_Wire, frozen=True):
    id: str | None = None
    name: str | None = None
    domain: str | None = None
    cat: list[str] = []
    keywords: Keywords = None
    kwarray: list[str] = []
    publisher: Publisher | None = None
    content: Content | None = None


class Site(_Property, frozen=True):
    page: str | None = None


class App(_Property, frozen=True):
    bundle: str | None = None
    storeurl: str | None = None


class Dooh(_Property, frozen=True):
    pass


class Geo(_Wire, frozen=True):
    lat: float | None = None
    lon: float | None = None
    country: str | None = None  # ISO 3166-1 alpha-3
    region: str | None = None  # ISO 3166-2 subdivision code without the country
    city: str | None = None
    zip: str | None = None
    type: int | None = None


class Device(_Wire, frozen=True):
    ua: str | None = None
    ip: str | None = None
    ipv6: str | None = None
    devicetype: int | None = None
    make: str | None = None
    model: str | None = None
    os: str | None = None
    osv: str | None = None
    ifa: str | None = None
    lmt: Flag | None = None
    dnt: Flag | None = None
    language: str | None = None
    geo: Geo | None = None


class Segment(_Wire, frozen=True):
    id: str | None = None


class Data(_Wire, frozen=True):
    id: str | None = None
    segment: list[Segment] = []


class User(_Wire, frozen=True):
    id: str | None = None
    buyeruid: str | None = None
    keywords: Keywords = None
    kwarray: list[str] = []
    consent: str | None = None
    data: list[Data] = []
    ext: Ext = None


class Regs(_Wire, frozen=True):
    coppa: Flag | None = None
    gdpr: Flag | None = None
    us_privacy: str | None = None
    gpp: str | None = None
    gpp_sid: list[int] | None = None
    ext: Ext = None


class Source(_Wire, frozen=True):
    tid: str | None = None
    schain: Ext = None
    ext: Ext = None


class BidRequest(_Wire, frozen=True):
    id: NonEmpty
    imp: Annotated[list[Imp], msgspec.Meta(min_length=1, max_length=MAX_IMPS)]
    site: Site | None = None
    app: App | None = None
    dooh: Dooh | None = None
    device: Device | None = None
    user: User | None = None
    regs: Regs | None = None
    at: int = 2
    tmax: int | None = None
    cur: list[str] = []
    bcat: list[str] = []
    badv: list[str] = []
    bapp: list[str] = []
    test: Flag = 0
    source: Source | None = None


# --- Buyers' responses ----------------------------------------------------------------


class Bid(_Wire, frozen=True):
    id: str
    impid: str
    price: Decimal
    adm: str | None = None
    adid: str | None = None
    adomain: list[str] = []
    crid: str | None = None
    cid: str | None = None
    cat: list[str] = []
    w: int | None = None
    h: int | None = None
    mtype: int | None = None
    dealid: str | None = None
    nurl: str | None = None
    burl: str | None = None
    lurl: str | None = None
    ext: Ext = None


class SeatBid(_Wire, frozen=True):
    bid: list[Bid]
    seat: str | None = None


class BidResponse(_Wire, frozen=True):
    id: str
    seatbid: list[SeatBid] = []
    bidid: str | None = None
    cur: str = "USD"
    nbr: int | None = None


_request_decoder = msgspec.json.Decoder(BidRequest)
_response_decoder = msgspec.json.Decoder(BidResponse)
_encoder = msgspec.json.Encoder(decimal_format="number")
_AT_PATH = re.compile(r" - at `(\$[^`]*)`$")
_MISSING_FIELD = re.compile(r"^Object missing required field `([^`]+)`")
_EMPTY_OBJECT = re.compile(rb"^\s*\{\s*\}\s*$")


def _decode[T](decoder: msgspec.json.Decoder[T], body: bytes) -> T:
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise _validation_error(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise OpenRtbError(str(exc)) from None
    except RecursionError:
        raise OpenRtbError("JSON is nested too deeply") from None


def _validation_error(text: str) -> OpenRtbError:
    match = _AT_PATH.search(text)
    path = match.group(1) if match else "$"
    message = text[: match.start()] if match else text
    # Name the missing field itself, not the object that lacks it.
    missing = _MISSING_FIELD.match(message)
    if missing:
        path = f"{path}.{missing.group(1)}"
    return OpenRtbError(message, path=path)


def _check_money(value: Decimal, path: str) -> None:
    if not value.is_finite() or value < 0 or value >= _MONEY_LIMIT:
        raise OpenRtbError(f"Expected a number from 0 to 10^12, got {value}", path=path)


def decode_bid_request(body: bytes) -> BidRequest:
    """The request, or an OpenRtbError naming the first JSON path at fault."""
    request = _decode(_request_decoder, body)
    seen: set[str] = set()
    for n, imp in enumerate(request.imp):
        if imp.id in seen:
            raise OpenRtbError(f"Duplicate imp id {imp.id!r}", path=f"$.imp[{n}].id")
        seen.add(imp.id)
        if imp.banner is None and imp.video is None and imp.audio is None and imp.native is None:
            raise OpenRtbError(
                "An imp needs at least one of banner, video, audio, native", path=f"$.imp[{n}]"
            )
        _check_money(imp.bidfloor, f"$.imp[{n}].bidfloor")
        for m, deal in enumerate(imp.pmp.deals if imp.pmp else ()):
            _check_money(deal.bidfloor, f"$.imp[{n}].pmp.deals[{m}].bidfloor")
    return request


# --- Country and region codes ---------------------------------------------------------


def _country_tables() -> tuple[dict[str, str], dict[str, str]]:
    to_alpha2: dict[str, str] = {}
    to_alpha3: dict[str, str] = {}
    for country in pycountry.countries:
        to_alpha2[country.alpha_3] = to_alpha2[country.alpha_2] = country.alpha_2
        to_alpha3[country.alpha_2] = country.alpha_3
    return to_alpha2, to_alpha3


# Built at import so that no request pays for loading pycountry's database.
_TO_ALPHA2, _TO_ALPHA3 = _country_tables()


def _alpha2(country: str | None) -> str | None:
    """ISO alpha-2 for an alpha-3 (OpenRTB) or alpha-2 code; None when unknown."""
    return _TO_ALPHA2.get(country.strip().upper()) if country else None


def _iso_region(region: str | None, country: str | None) -> str | None:
    """The ISO 3166-2 code: region "CA" in the US is "US-CA"; a full code is kept as sent."""
    if not region or not region.strip():
        return None
    code = region.strip().upper()
    if "-" in code:
        return code
    return f"{country}-{code}" if country else None


# --- Inbound request → AdContext ------------------------------------------------------


def to_context(
    req: BidRequest,
    *,
    request_id: str,
    now: float,
    currency: str,
    fx: Mapping[str, Decimal],
    sec_gpc: str | None,
    placement_key: str | None = None,
    explain: bool = False,
) -> AdContext:
    """The request as the orchestrator sees it; floors converted into `currency`."""
    key = _placement_key(req.imp, placement_key)
    site, app, user, device = req.site, req.app, req.user, req.device
    prop: _Property | None = app or site or req.dooh
    secure_page = bool(site and site.page and site.page[:8].lower() == "https://")
    return AdContext(
        request_id=request_id,
        source="openrtb",
        placement_key=key,
        imps=[_imp(imp, n, currency, fx, secure_page) for n, imp in enumerate(req.imp)],
        device=_device(device),
        geo=_geo(device.geo if device else None),
        channel=_channel(req),
        domain=prop.domain if prop else None,
        page=site.page if site else None,
        bundle=app.bundle if app else None,
        property=prop.name if prop else None,
        content_categories=_content_categories(prop),
        keywords=_keywords(
            prop.keywords if prop else None,
            prop.kwarray if prop else None,
            user.keywords if user else None,
            user.kwarray if user else None,
        ),
        user_id=user.id if user else None,
        buyer_uid=user.buyeruid if user else None,
        segments=_segments(user),
        badv=frozenset(req.badv),
        bcat=frozenset(req.bcat),
        bapp=frozenset(req.bapp),
        at=1 if req.at == 1 else 2,
        tmax=req.tmax,
        cur=tuple(req.cur),
        test=req.test == 1,
        privacy=_privacy(req, sec_gpc),
        explain=explain,
        now=now,
        source_ext=_source_ext(req.source),
    )


def _placement_key(imps: list[Imp], given: str | None) -> str:
    key = given or imps[0].tagid
    if not key:
        raise OpenRtbError("No placement key: set imp.tagid", path="$.imp[0].tagid")
    for n, imp in enumerate(imps):
        if imp.tagid is not None and imp.tagid != key:
            raise OpenRtbError(
                f"Every imp must use the placement key {key!r}, got {imp.tagid!r}",
                path=f"$.imp[{n}].tagid",
            )
    return key


def _convert(amount: Decimal, code: str, currency: str, fx: Mapping[str, Decimal]) -> Decimal:
    """`amount` of `code` in the platform currency; KeyError for a currency without a rate."""
    if not amount or code == currency:
        return amount
    return amount * fx[code]


def _imp(
    imp: Imp, n: int, currency: str, fx: Mapping[str, Decimal], secure_page: bool
) -> context.Imp:
    try:
        floor = _convert(imp.bidfloor, imp.bidfloorcur, currency, fx)
    except KeyError:
        raise OpenRtbError(
            f"Unknown currency {imp.bidfloorcur!r}", path=f"$.imp[{n}].bidfloorcur"
        ) from None
    formats = {
        name
        for name, present in (
            (context.BANNER, imp.banner),
            (context.VIDEO, imp.video),
            (context.AUDIO, imp.audio),
            (context.NATIVE, imp.native),
        )
        if present is not None
    }
    pmp = imp.pmp
    return context.Imp(
        id=imp.id,
        sizes=_sizes(imp),
        formats=frozenset(formats),
        bidfloor=floor,
        # Absent means unknown; an https page can only show https creatives.
        secure=imp.secure == 1 if imp.secure is not None else secure_page,
        private_auction=bool(pmp and pmp.private_auction == 1),
        deals=_deals(pmp.deals, n, currency, fx) if pmp else (),
        video=_video_spec(imp.video),
        audio=_audio_spec(imp.audio),
        native_request=_native_request(imp.native),
        pos=imp.banner.pos if imp.banner else None,
        tagid=imp.tagid,
    )


def _sizes(imp: Imp) -> tuple[str, ...]:
    sizes: dict[str, None] = {}  # an ordered set
    if imp.banner is not None:
        _add_size(sizes, imp.banner.w, imp.banner.h)
        for format_ in imp.banner.format:
            _add_size(sizes, format_.w, format_.h)
    if imp.video is not None:
        _add_size(sizes, imp.video.w, imp.video.h)
    return tuple(sizes)


def _add_size(sizes: dict[str, None], w: int | None, h: int | None) -> None:
    if w and h and w > 0 and h > 0:
        sizes[f"{w}x{h}"] = None


def _deals(
    deals: list[Deal], n: int, currency: str, fx: Mapping[str, Decimal]
) -> tuple[DealRequest, ...]:
    converted = []
    for m, deal in enumerate(deals):
        try:
            floor = _convert(deal.bidfloor, deal.bidfloorcur, currency, fx)
        except KeyError:
            raise OpenRtbError(
                f"Unknown currency {deal.bidfloorcur!r}",
                path=f"$.imp[{n}].pmp.deals[{m}].bidfloorcur",
            ) from None
        converted.append(
            DealRequest(
                id=deal.id,
                bidfloor=floor,
                at=deal.at,
                wseat=tuple(deal.wseat),
                wadomain=tuple(deal.wadomain),
            )
        )
    return tuple(converted)


def _video_spec(video: Video | None) -> VideoSpec | None:
    if video is None:
        return None
    return VideoSpec(
        mimes=tuple(video.mimes),
        minduration=video.minduration,
        maxduration=video.maxduration,
        protocols=tuple(video.protocols),
        w=video.w,
        h=video.h,
        linearity=video.linearity,
        skip=video.skip,
        startdelay=video.startdelay,
    )


def _audio_spec(audio: Audio | None) -> VideoSpec | None:
    if audio is None:
        return None
    return VideoSpec(
        mimes=tuple(audio.mimes),
        minduration=audio.minduration,
        maxduration=audio.maxduration,
        protocols=tuple(audio.protocols),
    )


def _native_request(native: Native | None) -> str | None:
    if native is None:
        return None
    if isinstance(native.request, str):
        return native.request
    return _encoder.encode(native.request).decode()


def _device(device: Device | None) -> DeviceInfo:
    if device is None:
        return DeviceInfo()
    return DeviceInfo(
        ua=device.ua,
        ip=device.ip,
        ipv6=device.ipv6,
        devicetype=device.devicetype,
        os=device.os,
        osv=device.osv,
        make=device.make,
        model=device.model,
        ifa=device.ifa,
        lmt=device.lmt,
        language=device.language,
    )


def _geo(geo: Geo | None) -> context.Geo:
    if geo is None:
        return context.Geo()
    country = _alpha2(geo.country)
    return context.Geo(
        country=country,
        region=_iso_region(geo.region, country),
        city=geo.city,
        zip=geo.zip,
        lat=_coordinate(geo.lat, 90.0),
        lon=_coordinate(geo.lon, 180.0),
        source="request" if country else "",
    )


def _coordinate(value: float | None, limit: float) -> float | None:
    return value if value is not None and -limit <= value <= limit else None


def _channel(req: BidRequest) -> str | None:
    devicetype = req.device.devicetype if req.device else None
    if req.dooh is not None or devicetype == DOOH_DEVICE_TYPE:
        return context.DOOH
    if devicetype in CTV_DEVICE_TYPES:
        return context.CTV
    if req.app is not None:
        return context.APP
    if req.site is not None:
        return context.WEB
    return None


def _content_categories(prop: _Property | None) -> tuple[str, ...]:
    if prop is None:
        return ()
    content = prop.content.cat if prop.content else []
    return tuple(dict.fromkeys([*prop.cat, *content]))


def _keywords(*sources: str | list[str] | None) -> tuple[str, ...]:
    words: dict[str, None] = {}
    for source in sources:
        if not source:
            continue
        for item in source.split(",") if isinstance(source, str) else source:
            word = item.strip().lower()
            if word:
                words[word] = None
    return tuple(words)


def _segments(user: User | None) -> tuple[str, ...]:
    if user is None:
        return ()
    ids = (segment.id for data in user.data for segment in data.segment if segment.id)
    return tuple(dict.fromkeys(ids))


def _source_ext(source: Source | None) -> dict[str, object] | None:
    if source is None:
        return None
    # 2.5 carried the supply chain in source.ext.schain.
    schain = source.schain or (source.ext or {}).get("schain")
    kept = {"tid": source.tid, "schain": schain}
    return {name: value for name, value in kept.items() if value} or None


# --- Privacy signals, 2.6 locations first ---------------------------------------------


def _privacy(req: BidRequest, sec_gpc: str | None) -> PrivacySignals:
    regs, user = req.regs, req.user
    regs_ext = (regs.ext if regs else None) or {}
    user_ext = (user.ext if user else None) or {}
    gdpr = regs.gdpr if regs else None
    if gdpr is None:
        gdpr = _ext_flag(regs_ext, "gdpr", "$.regs.ext")
    tc_string = user.consent if user else None
    if tc_string is None:
        tc_string = _ext_str(user_ext, "consent", "$.user.ext")
    us_privacy = regs.us_privacy if regs else None
    if us_privacy is None:
        us_privacy = _ext_str(regs_ext, "us_privacy", "$.regs.ext")
    gpp = regs.gpp if regs else None
    if gpp is None:
        gpp = _ext_str(regs_ext, "gpp", "$.regs.ext")
    gpp_sid = regs.gpp_sid if regs else None
    return PrivacySignals(
        gdpr=gdpr,
        tc_string=tc_string,
        us_privacy=us_privacy,
        gpp=gpp,
        gpp_sid=tuple(gpp_sid) if gpp_sid is not None else _ext_sids(regs_ext),
        coppa=regs.coppa if regs else None,
        gpc=_gpc(sec_gpc, regs_ext),
        lmt=req.device.lmt if req.device else None,
    )


def _ext_flag(ext: dict[str, Any], name: str, where: str) -> int | None:
    value = ext.get(name)
    if value is None:
        return None
    if value in (0, 1, "0", "1") and not isinstance(value, bool):
        return int(value)
    raise OpenRtbError(f"Expected 0 or 1, got {value!r}", path=f"{where}.{name}")


def _ext_str(ext: dict[str, Any], name: str, where: str) -> str | None:
    value = ext.get(name)
    if value is None or isinstance(value, str):
        return value
    raise OpenRtbError(f"Expected `str`, got {type(value).__name__}", path=f"{where}.{name}")


def _ext_sids(ext: dict[str, Any]) -> tuple[int, ...]:
    value = ext.get("gpp_sid")
    if value is None:
        return ()
    if isinstance(value, list) and all(type(sid) is int for sid in value):
        return tuple(value)
    raise OpenRtbError("Expected an array of integers", path="$.regs.ext.gpp_sid")


def _gpc(header: str | None, regs_ext: dict[str, Any]) -> str | None:
    header = header.strip() if header is not None else None
    if header == "1":
        return "1"
    value = regs_ext.get("gpc")
    if value is None:
        return header
    if isinstance(value, str | int) and not isinstance(value, bool):
        return str(value)
    raise OpenRtbError(f"Expected a string, got {value!r}", path="$.regs.ext.gpc")


# --- Outbound requests to external buyers ---------------------------------------------


def build_outbound_request(
    ctx: AdContext,
    *,
    imps: Sequence[context.Imp],
    permission: BuyerPermission,
    permissions: Permissions,
    tmax_ms: int,
    currency: str,
    request_id: str,
    fx_rate: Decimal = Decimal(1),
) -> bytes:
    """An OpenRTB 2.6 BidRequest for one buyer, carrying only what its permission allows.

    Floors in `imps` are in the platform currency; they are written in `currency`, of which
    one unit is worth `fx_rate` platform units (1 when `currency` is the platform's).
    `imp.tagid` is not forwarded: it is our placement key.
    """
    if not permission.call:
        raise ValueError(f"this buyer may not be called: {permission.reason or 'no permission'}")
    if not imps:
        raise ValueError("an outbound request needs at least one imp")
    if not fx_rate.is_finite() or fx_rate <= 0:
        raise ValueError(f"not an exchange rate: {fx_rate}")
    precise = permission.send_precise_geo
    body = {
        "id": request_id,
        "imp": [_outbound_imp(imp, currency, fx_rate) for imp in imps],
        **_outbound_property(ctx, with_keywords=permission.send_ids),
        "device": _outbound_device(
            ctx, permission, truncate=not precise or not permissions.personalise
        ),
        "user": _outbound_user(ctx, permission),
        "regs": _outbound_regs(ctx.privacy),
        "at": ctx.at,
        "tmax": tmax_ms,
        "cur": [currency],
        "bcat": sorted(ctx.bcat),
        "badv": sorted(ctx.badv),
        "bapp": sorted(ctx.bapp),
        "test": 1 if ctx.test else None,
        "source": _outbound_source(ctx),
    }
    return _encoder.encode(_compact(body))


# One request goes to several buyers with the same device IP, and parsing an address through
# `ipaddress` costs more than the rest of the outbound request together.
_truncated_ip = lru_cache(maxsize=4096)(truncate_ip)


def _compact(fields: dict[str, Any]) -> dict[str, Any]:
    """The fields that carry something: OpenRTB reads an absent field as "unknown"."""
    return {k: v for k, v in fields.items() if v is not None and v != [] and v != {} and v != ""}


def _money(value: Decimal) -> msgspec.Raw:
    # str(Decimal) switches to exponent form ("1E+1", "1E-7"); write the plain digits.
    if not value.is_finite():
        raise ValueError(f"not a finite amount: {value}")
    return msgspec.Raw(format(value, "f").encode())


def _in_currency(floor: Decimal, fx_rate: Decimal) -> Decimal:
    """A platform-currency floor in the buyer's currency. Rounded up, so that a bid at the
    floor we write is not below our own floor once converted back."""
    if fx_rate == 1 or not floor:
        return floor
    return (floor / fx_rate).quantize(_FLOOR_PLACES, rounding=ROUND_CEILING)


def _parse_size(size: str) -> tuple[int, int] | None:
    w, _, h = size.partition("x")
    return (int(w), int(h)) if w.isdigit() and h.isdigit() else None


def _outbound_imp(imp: context.Imp, currency: str, fx_rate: Decimal) -> dict[str, Any]:
    sizes = [parsed for size in imp.sizes if (parsed := _parse_size(size))]
    formats = imp.formats
    native = imp.native_request if context.NATIVE in formats else None
    return _compact(
        {
            "id": imp.id,
            "banner": _outbound_banner(imp, sizes) if context.BANNER in formats else None,
            "video": _outbound_video(imp.video, sizes) if context.VIDEO in formats else None,
            "audio": _outbound_audio(imp.audio) if context.AUDIO in formats else None,
            "native": {"request": native} if native else None,
            "bidfloor": _money(_in_currency(imp.bidfloor, fx_rate)),
            "bidfloorcur": currency,
            "secure": 1 if imp.secure else 0,
            "pmp": _outbound_pmp(imp, currency, fx_rate),
        }
    )


def _outbound_banner(imp: context.Imp, sizes: list[tuple[int, int]]) -> dict[str, Any]:
    first = sizes[0] if sizes else (None, None)
    return _compact(
        {
            "w": first[0],
            "h": first[1],
            "format": [{"w": w, "h": h} for w, h in sizes],
            "pos": imp.pos,
        }
    )


def _outbound_video(spec: VideoSpec | None, sizes: list[tuple[int, int]]) -> dict[str, Any]:
    spec = spec or VideoSpec()
    w, h = (spec.w, spec.h) if spec.w and spec.h else (sizes[0] if sizes else (None, None))
    return _compact(
        {
            "mimes": list(spec.mimes),
            "minduration": spec.minduration,
            "maxduration": spec.maxduration,
            "protocols": list(spec.protocols),
            "w": w,
            "h": h,
            "linearity": spec.linearity,
            "skip": spec.skip,
            "startdelay": spec.startdelay,
        }
    )


def _outbound_audio(spec: VideoSpec | None) -> dict[str, Any]:
    spec = spec or VideoSpec()
    return _compact(
        {
            "mimes": list(spec.mimes),
            "minduration": spec.minduration,
            "maxduration": spec.maxduration,
            "protocols": list(spec.protocols),
        }
    )


def _outbound_pmp(imp: context.Imp, currency: str, fx_rate: Decimal) -> dict[str, Any] | None:
    if not imp.deals and not imp.private_auction:
        return None
    deals = [
        _compact(
            {
                "id": deal.id,
                "bidfloor": _money(_in_currency(deal.bidfloor, fx_rate)),
                "bidfloorcur": currency,
                "at": deal.at,
                "wseat": list(deal.wseat),
                "wadomain": list(deal.wadomain),
            }
        )
        for deal in imp.deals
    ]
    return _compact({"private_auction": 1 if imp.private_auction else 0, "deals": deals})


def _outbound_property(ctx: AdContext, *, with_keywords: bool) -> dict[str, Any]:
    # ctx.keywords mixes page and user keywords; user interests are personal data.
    keywords = ctx.keywords if with_keywords else ()
    shared = {
        "name": ctx.property,
        "domain": ctx.domain,
        "cat": list(ctx.content_categories),
        "keywords": ",".join(keywords),
        "kwarray": list(keywords),
    }
    if ctx.channel == context.APP or ctx.bundle:
        return {"app": _compact({**shared, "bundle": ctx.bundle})}
    return {"site": _compact({**shared, "page": ctx.page})}


def _outbound_device(
    ctx: AdContext, permission: BuyerPermission, *, truncate: bool
) -> dict[str, Any]:
    device = ctx.device
    lmt = device.lmt if device.lmt is not None else ctx.privacy.lmt
    return _compact(
        {
            "ua": device.ua,
            "ip": _truncated_ip(device.ip) if truncate else device.ip,
            "ipv6": _truncated_ip(device.ipv6) if truncate else device.ipv6,
            "devicetype": device.devicetype,
            "make": device.make,
            "model": device.model,
            "os": device.os,
            "osv": device.osv,
            "ifa": device.ifa if permission.send_ids else None,
            "lmt": lmt,
            "language": device.language,
            "geo": _outbound_geo(ctx.geo, precise=permission.send_precise_geo),
        }
    )


def _outbound_geo(geo: context.Geo, *, precise: bool) -> dict[str, Any]:
    region = geo.region
    if region and geo.country and region.startswith(f"{geo.country}-"):
        region = region[len(geo.country) + 1 :]
    return _compact(
        {
            "lat": geo.lat if precise else coarse_coordinate(geo.lat),
            "lon": geo.lon if precise else coarse_coordinate(geo.lon),
            "type": GEO_TYPE_IP if geo.source in ("geoip", "header") else None,
            "country": _TO_ALPHA3.get(geo.country) if geo.country else None,
            "region": region,
            "city": geo.city,
            "zip": geo.zip if precise else None,
        }
    )


def _outbound_user(ctx: AdContext, permission: BuyerPermission) -> dict[str, Any]:
    ids = permission.send_ids
    segments = [{"id": segment} for segment in ctx.segments] if ids else []
    return _compact(
        {
            "id": ctx.user_id if ids else None,
            "buyeruid": ctx.buyer_uid if ids else None,
            "consent": ctx.privacy.tc_string,
            "data": [{"segment": segments}] if segments else None,
        }
    )


def _outbound_regs(privacy: PrivacySignals) -> dict[str, Any]:
    return _compact(
        {
            "coppa": privacy.coppa,
            "gdpr": privacy.gdpr,
            "us_privacy": privacy.us_privacy,
            "gpp": privacy.gpp,
            "gpp_sid": list(privacy.gpp_sid),
            # The GPC extension is a string copied from the Sec-GPC header.
            "ext": {"gpc": "1"} if privacy.gpc == "1" else None,
        }
    )


def _outbound_source(ctx: AdContext) -> dict[str, Any]:
    received = ctx.source_ext or {}
    # tid is shared by every party to the transaction: keep the caller's when there is one.
    return _compact(
        {"tid": received.get("tid") or ctx.request_id, "schain": received.get("schain")}
    )


# --- Buyers' responses and ours -------------------------------------------------------


def decode_bid_response(body: bytes) -> BidResponse:
    """A buyer's response; `{}` (the spec's bodyless no-bid) decodes to no seatbid, id ""."""
    if _EMPTY_OBJECT.match(body):
        return BidResponse(id="")
    response = _decode(_response_decoder, body)
    for s, seatbid in enumerate(response.seatbid):
        for b, bid in enumerate(seatbid.bid):
            price = bid.price
            # msgspec accepts "NaN" and "Infinity" strings as Decimals; no price is either.
            if not price.is_finite() or abs(price) >= _MONEY_LIMIT:
                raise OpenRtbError(
                    f"Expected a finite price below 10^12, got {price}",
                    path=f"$.seatbid[{s}].bid[{b}].price",
                )
    return response


@dataclass(frozen=True, slots=True)
class ResponseBid:
    """One bid in our answer to an exchange."""

    id: str
    impid: str
    price: Decimal
    adm: str | None = None
    adomain: tuple[str, ...] = ()
    crid: str | None = None
    cid: str | None = None
    cat: tuple[str, ...] = ()
    w: int | None = None
    h: int | None = None
    mtype: int | None = None  # MTYPE_BANNER .. MTYPE_NATIVE
    dealid: str | None = None
    nurl: str | None = None
    burl: str | None = None
    lurl: str | None = None


def encode_bid_response(
    *, request_id: str, bids: Sequence[ResponseBid], currency: str, seat: str = "adsplatform"
) -> bytes:
    """Our BidResponse JSON: one seatbid, prices as plain JSON numbers, None fields left out."""
    seatbid = [{"seat": seat, "bid": [_response_bid(bid) for bid in bids]}] if bids else []
    return _encoder.encode({"id": request_id, "seatbid": seatbid, "cur": currency})


def _response_bid(bid: ResponseBid) -> dict[str, Any]:
    return _compact(
        {
            "id": bid.id,
            "impid": bid.impid,
            "price": _money(bid.price),
            "adm": bid.adm,
            "adomain": list(bid.adomain),
            "crid": bid.crid,
            "cid": bid.cid,
            "cat": list(bid.cat),
            "w": bid.w,
            "h": bid.h,
            "mtype": bid.mtype,
            "dealid": bid.dealid,
            "nurl": bid.nurl,
            "burl": bid.burl,
            "lurl": bid.lurl,
        }
    )
