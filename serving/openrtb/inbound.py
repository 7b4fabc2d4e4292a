"""An exchange's BidRequest to our AdContext: geo codes converted, privacy signals read
from their 2.6 locations first and the 2.5 extensions after."""

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import msgspec
import pycountry

from compliance.policy import PrivacySignals
from serving import context
from serving.blocks import normalise_badv
from serving.context import AdContext, DealRequest, DeviceInfo, VideoSpec, has_pods
from serving.openrtb.codes import CTV_DEVICE_TYPES, DOOH_DEVICE_TYPE
from serving.openrtb.schema import (
    Audio,
    BidRequest,
    Deal,
    Device,
    Eid,
    Geo,
    Imp,
    Native,
    OpenRtbError,
    Source,
    User,
    Video,
    _encoder,
    _Property,
)

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
    imps = [_imp(imp, n, currency, fx, secure_page) for n, imp in enumerate(req.imp)]
    return AdContext(
        request_id=request_id,
        auction_id=req.id,
        source="openrtb",
        placement_key=key,
        imps=imps,
        pods=has_pods(imps),
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
        eids=_eids(user),
        badv=normalise_badv(req.badv),
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
        video=_video_spec(imp.video, n, imp.bidfloorcur, currency, fx),
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


def _video_spec(
    video: Video | None, n: int, cur: str, currency: str, fx: Mapping[str, Decimal]
) -> VideoSpec | None:
    if video is None:
        return None
    per_second = video.mincpmpersec
    if per_second is not None:
        try:  # in the imp's floor currency, like bidfloor
            per_second = _convert(per_second, cur, currency, fx)
        except KeyError:
            raise OpenRtbError(
                f"Unknown currency {cur!r}", path=f"$.imp[{n}].bidfloorcur"
            ) from None
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
        rqddurs=tuple(dict.fromkeys(video.rqddurs)),
        mincpmpersec=per_second,
        podid=video.podid,
        podseq=video.podseq,
        slotinpod=video.slotinpod,
        poddur=video.poddur,
        maxseq=video.maxseq,
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


def _eids(user: User | None) -> tuple[dict[str, Any], ...]:
    """The user's extended ids as plain JSON objects, ready to forward: 2.6 `user.eids`, or
    2.5 `user.ext.eids` when the 2.6 field is absent (the 2.6 field wins, as for consent)."""
    if user is None:
        return ()
    eids = user.eids
    if eids is None:
        raw = (user.ext or {}).get("eids")
        if raw is None:
            return ()
        try:
            eids = msgspec.convert(raw, list[Eid])
        except msgspec.ValidationError as exc:
            # msgspec names the path inside the value it was given: prefix where that was.
            raise OpenRtbError(str(exc).split(" - at `$", 1)[0], path="$.user.ext.eids") from None
    return tuple(_plain_eid(eid) for eid in eids if eid.uids)


def _plain_eid(eid: Eid) -> dict[str, Any]:
    uids = [
        {k: v for k, v in msgspec.structs.asdict(uid).items() if v is not None} for uid in eid.uids
    ]
    fields = msgspec.structs.asdict(eid)
    fields["uids"] = uids
    return {k: v for k, v in fields.items() if v is not None}


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
