"""The first-party ad request (`POST /v1/ad`), validated by msgspec: a wrong field is a 400
naming its path. Devices and pages send it: Fire TV and other apps, web pages, voice.

It maps onto the same `AdContext` as an OpenRTB request; money in it (floors) is in the
platform currency.
"""

import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated

import msgspec

from compliance.policy import PrivacySignals
from serving.blocks import normalise_badv
from serving.context import (
    APP,
    AUDIO,
    BANNER,
    NATIVE,
    VIDEO,
    WEB,
    AdContext,
    DeviceInfo,
    Geo,
    Imp,
    VideoSpec,
)
from serving.http import Scope, header, int_param

Size = Annotated[str, msgspec.Meta(pattern=r"^[1-9][0-9]{0,3}x[1-9][0-9]{0,3}$")]
Flag = Annotated[int, msgspec.Meta(ge=0, le=1)]
Text = Annotated[str, msgspec.Meta(max_length=2000)]
Short = Annotated[str, msgspec.Meta(max_length=200)]
Format = Annotated[str, msgspec.Meta(pattern=r"^(banner|video|audio|native)$")]
Channel = Annotated[str, msgspec.Meta(pattern=r"^(web|app|ctv|voice|dooh)$")]
# An ad pod on /v1/vast: at most an hour, at most 30 ads (as OpenRTB pods are decoded).
MAX_POD_SECONDS = 3600
MAX_POD_ADS = 30


class Slot(msgspec.Struct, frozen=True):
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    sizes: Annotated[list[Size], msgspec.Meta(max_length=20)] = []
    formats: Annotated[list[Format], msgspec.Meta(min_length=1, max_length=4)] = msgspec.field(
        default_factory=lambda: [BANNER]
    )
    pos: int | None = None
    floor: Decimal | None = None  # CPM, platform currency
    # Video and audio: what the player accepts.
    mimes: Annotated[list[Short], msgspec.Meta(max_length=20)] = []
    minduration: Annotated[int, msgspec.Meta(ge=0)] | None = None
    maxduration: Annotated[int, msgspec.Meta(ge=0)] | None = None


class Regs(msgspec.Struct, frozen=True):
    gdpr: Flag | None = None
    us_privacy: Short | None = None
    gpp: Text | None = None
    gpp_sid: list[int] | None = None
    coppa: Flag | None = None


class User(msgspec.Struct, frozen=True):
    id: Short | None = None
    consent: Text | None = None  # TCF TC string
    segments: Annotated[list[Short], msgspec.Meta(max_length=100)] = []


class GeoIn(msgspec.Struct, frozen=True):
    country: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z]{2}$")] | None = None
    region: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z]{2}-[A-Za-z0-9]{1,3}$")] | None = None
    city: Short | None = None
    lat: Annotated[float, msgspec.Meta(ge=-90, le=90)] | None = None
    lon: Annotated[float, msgspec.Meta(ge=-180, le=180)] | None = None


class Device(msgspec.Struct, frozen=True):
    ua: Text | None = None
    ip: Short | None = None
    devicetype: Annotated[int, msgspec.Meta(ge=1, le=8)] | None = None
    os: Short | None = None
    ifa: Short | None = None
    lmt: Flag | None = None
    geo: GeoIn | None = None


class Site(msgspec.Struct, frozen=True):
    domain: Short | None = None
    page: Text | None = None
    categories: Annotated[list[Short], msgspec.Meta(max_length=20)] = []


class App(msgspec.Struct, frozen=True):
    bundle: Short | None = None
    name: Short | None = None
    categories: Annotated[list[Short], msgspec.Meta(max_length=20)] = []


class AdRequest(msgspec.Struct, frozen=True):
    placement: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    slots: Annotated[list[Slot], msgspec.Meta(min_length=1, max_length=10)]
    device: Device | None = None
    user: User | None = None
    regs: Regs | None = None
    site: Site | None = None
    app: App | None = None
    channel: Channel | None = None
    property: Short | None = None  # a named property, e.g. "Fire TV"
    keywords: Annotated[list[Short], msgspec.Meta(max_length=50)] = []
    badv: Annotated[list[Short], msgspec.Meta(max_length=100)] = []
    bcat: Annotated[list[Short], msgspec.Meta(max_length=100)] = []
    tmax: Annotated[int, msgspec.Meta(ge=10, le=5000)] | None = None
    test: Flag = 0


ad_request_decoder = msgspec.json.Decoder(AdRequest)


class RequestError(ValueError):
    """A request that decoded but does not make sense; the message names the field."""


def _imp(slot: Slot, path: str) -> Imp:
    formats = frozenset(slot.formats)
    if slot.floor is not None and not (0 <= slot.floor < 1_000_000):
        raise RequestError(f"a floor is a CPM from 0 to 999999 - at `{path}.floor`")
    if BANNER in formats and not slot.sizes:
        raise RequestError(f"a banner slot needs sizes - at `{path}.sizes`")
    spec = VideoSpec(
        mimes=tuple(slot.mimes), minduration=slot.minduration, maxduration=slot.maxduration
    )
    return Imp(
        id=slot.id,
        sizes=tuple(slot.sizes),
        formats=formats,
        bidfloor=slot.floor or Decimal(0),
        secure=True,
        video=spec if VIDEO in formats else None,
        audio=spec if AUDIO in formats else None,
        native_request=None if NATIVE not in formats else "{}",
        pos=slot.pos,
    )


def to_context(
    request: AdRequest,
    *,
    request_id: str,
    now: float,
    sec_gpc: str | None,
    explain: bool,
    correlation_id: str = "",
) -> AdContext:
    """The orchestrator's view of a first-party request."""
    if len({slot.id for slot in request.slots}) != len(request.slots):
        raise RequestError("slot ids must be unique - at `$.slots`")
    regs, user, device = request.regs, request.user, request.device
    geo_in = device.geo if device else None
    geo = Geo()
    if geo_in is not None:
        geo = Geo(
            country=geo_in.country.upper() if geo_in.country else None,
            region=geo_in.region.upper() if geo_in.region else None,
            city=geo_in.city,
            lat=geo_in.lat,
            lon=geo_in.lon,
            source="request" if geo_in.country or geo_in.region else "",
        )
        if geo.region and not geo.country:
            geo.country = geo.region[:2]
    site, app = request.site, request.app
    channel = request.channel or (APP if app else WEB if site else None)
    return AdContext(
        request_id=request_id,
        source="v1",
        placement_key=request.placement,
        imps=[_imp(s, f"$.slots[{n}]") for n, s in enumerate(request.slots)],
        device=DeviceInfo(
            ua=device.ua if device else None,
            ip=device.ip if device else None,
            devicetype=device.devicetype if device else None,
            os=device.os if device else None,
            ifa=device.ifa if device else None,
            lmt=device.lmt if device else None,
        ),
        geo=geo,
        channel=channel,
        domain=site.domain if site else None,
        page=site.page if site else None,
        bundle=app.bundle if app else None,
        property=request.property or (app.name if app else None),
        content_categories=tuple(
            (site.categories if site else []) + (app.categories if app else [])
        ),
        keywords=tuple(dict.fromkeys(k.strip().lower() for k in request.keywords if k.strip())),
        user_id=user.id if user else None,
        segments=tuple(user.segments) if user else (),
        badv=normalise_badv(request.badv),
        bcat=frozenset(request.bcat),
        tmax=request.tmax,
        test=bool(request.test),
        privacy=PrivacySignals(
            gdpr=regs.gdpr if regs else None,
            tc_string=user.consent if user else None,
            us_privacy=regs.us_privacy if regs else None,
            gpp=regs.gpp if regs else None,
            gpp_sid=tuple(regs.gpp_sid or ()) if regs else (),
            coppa=regs.coppa if regs else None,
            gpc=sec_gpc,
            lmt=device.lmt if device else None,
        ),
        explain=explain,
        now=now,
        correlation_id=correlation_id,
    )


def _durations(text: str) -> tuple[int, ...]:
    """`rqddurs=15,30`: the exact ad lengths the player takes, in seconds."""
    if not text:
        return ()
    parts = text.split(",")
    if len(parts) > 32 or not all(p.isdigit() and 0 < int(p) <= MAX_POD_SECONDS for p in parts):
        raise ValueError(
            f"`rqddurs` must be up to 32 comma-separated seconds from 1 to {MAX_POD_SECONDS}"
        )
    return tuple(dict.fromkeys(int(p) for p in parts))


def _cpm_per_second(text: str | None) -> Decimal | None:
    """`mincpmpersec=0.5`: a floor per second of ad, platform currency."""
    if text is None or text == "":
        return None
    try:
        value = Decimal(text)
    except ArithmeticError:
        value = Decimal("NaN")
    if not value.is_finite() or not 0 <= value < 1_000_000 or len(text) > 20:
        raise ValueError(f"`mincpmpersec` must be a CPM from 0 to 999999, got {text[:20]!r}")
    return value


def vast_context(query: Mapping[str, str], request_id: str, scope: Scope) -> AdContext:
    """A video (or `format=audio`) request from a player's query string."""
    key = query.get("placement") or query.get("key")
    if not key:
        raise ValueError("`placement` is required")
    fmt = query.get("format", VIDEO)
    if fmt not in (VIDEO, AUDIO):
        raise ValueError("`format` must be video or audio")
    w, h = int_param(query, "w"), int_param(query, "h")
    poddur, maxseq = int_param(query, "poddur"), int_param(query, "maxseq")
    if poddur is not None and not 1 <= poddur <= MAX_POD_SECONDS:
        raise ValueError(f"`poddur` must be 1 to {MAX_POD_SECONDS} seconds")
    if maxseq is not None and not 1 <= maxseq <= MAX_POD_ADS:
        raise ValueError(f"`maxseq` must be 1 to {MAX_POD_ADS} ads")
    if maxseq is not None and poddur is None:
        raise ValueError("`maxseq` needs `poddur` (the pod's length in seconds)")
    if poddur is not None and fmt != VIDEO:
        raise ValueError("ad pods (`poddur`) are for video")
    spec = VideoSpec(
        mimes=tuple(m for m in query.get("mimes", "").split(",") if m),
        minduration=int_param(query, "minduration"),
        maxduration=int_param(query, "maxduration"),
        w=w,
        h=h,
        rqddurs=_durations(query.get("rqddurs", "")),
        mincpmpersec=_cpm_per_second(query.get("mincpmpersec")),
        poddur=poddur,
        maxseq=maxseq,
    )
    client = scope.get("client")
    sids = query.get("gpp_sid", "")
    try:
        gpp_sid = tuple(int(s) for s in sids.split(",") if s)
    except ValueError as exc:
        raise ValueError("`gpp_sid` must be comma-separated numbers") from exc
    imp = Imp(
        id="1",
        sizes=(f"{w}x{h}",) if w and h else (),
        formats=frozenset({fmt}),
        video=spec if fmt == VIDEO else None,
        audio=spec if fmt == AUDIO else None,
    )
    return AdContext(
        request_id=request_id,
        source="vast",
        placement_key=key,
        imps=[imp],
        pods=imp.is_pod,
        device=DeviceInfo(
            ua=header(scope, b"user-agent"),
            ip=query.get("ip") or (client[0] if client else None),
            ifa=query.get("ifa"),
            lmt=int_param(query, "lmt"),
        ),
        user_id=query.get("uid"),
        privacy=PrivacySignals(
            gdpr=int_param(query, "gdpr"),
            tc_string=query.get("gdpr_consent"),
            us_privacy=query.get("us_privacy"),
            gpp=query.get("gpp"),
            gpp_sid=gpp_sid,
            coppa=int_param(query, "coppa"),
            gpc=header(scope, b"sec-gpc"),
            lmt=int_param(query, "lmt"),
        ),
        explain=False,
        now=time.time(),
    )
