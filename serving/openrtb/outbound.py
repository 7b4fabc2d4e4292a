"""Our OpenRTB 2.6 requests to external buyers, carrying only what each buyer's permission
allows: no ids (user.id, buyeruid, ifa, eids, segments, user keywords) without `send_ids`,
coarse geo and truncated IPs without `send_precise_geo`.

Each buyer's request is built from that buyer's permission alone: a publisher restriction or
a missing consent for our own vendor id decides what we do, not what another vendor may
receive. COPPA (`regs.coppa = 1`) is applied on top of any permission, as Prebid Server
does: no ids, no lat/lon, city, zip or metro, and a truncated IP. Rounding is not enough."""

from collections.abc import Sequence
from decimal import ROUND_CEILING, Decimal
from functools import lru_cache
from typing import Any

from compliance.anonymise import coarse_coordinate, truncate_ip
from compliance.policy import BuyerPermission, PrivacySignals
from serving import context
from serving.context import AdContext, VideoSpec
from serving.openrtb.codes import GEO_TYPE_IP
from serving.openrtb.inbound import _TO_ALPHA3
from serving.openrtb.schema import _compact, _encoder, _money

# Floors sent in a buyer's currency: four decimals, rounded up (see _in_currency).
_FLOOR_PLACES = Decimal("0.0001")


# --- Outbound requests to external buyers ---------------------------------------------


def build_outbound_request(
    ctx: AdContext,
    *,
    imps: Sequence[context.Imp],
    permission: BuyerPermission,
    tmax_ms: int,
    currency: str,
    request_id: str,
    fx_rate: Decimal = Decimal(1),
    buyer_uid: str | None = None,
) -> bytes:
    """An OpenRTB 2.6 BidRequest for one buyer, carrying only what its permission allows.

    `buyer_uid` is this buyer's id for the user from our sync table (`serving.sync`); when
    there is none, the request's own `user.buyeruid` is passed on as before.

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
    coppa = ctx.privacy.coppa == 1
    ids = permission.send_ids and not coppa
    precise = permission.send_precise_geo and not coppa
    body = {
        "id": request_id,
        "imp": [_outbound_imp(imp, currency, fx_rate) for imp in imps],
        **_outbound_property(ctx, with_keywords=ids),
        "device": _outbound_device(ctx, ids=ids, precise=precise, coppa=coppa),
        "user": _outbound_user(ctx, ids=ids, buyer_uid=buyer_uid or ctx.buyer_uid),
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
            "rqddurs": list(spec.rqddurs),
            "mincpmpersec": _money(spec.mincpmpersec) if spec.mincpmpersec else None,
            # Ad pods, as the request asked for them (serving.pods places buyers' bids).
            "podid": spec.podid,
            "podseq": spec.podseq,
            "slotinpod": spec.slotinpod,
            "poddur": spec.poddur,
            "maxseq": spec.maxseq,
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


def _outbound_device(ctx: AdContext, *, ids: bool, precise: bool, coppa: bool) -> dict[str, Any]:
    device = ctx.device
    lmt = device.lmt if device.lmt is not None else ctx.privacy.lmt
    # The IP locates the user as well as the coordinates do: both follow `precise`.
    return _compact(
        {
            "ua": device.ua,
            "ip": device.ip if precise else _truncated_ip(device.ip),
            "ipv6": device.ipv6 if precise else _truncated_ip(device.ipv6),
            "devicetype": device.devicetype,
            "make": device.make,
            "model": device.model,
            "os": device.os,
            "osv": device.osv,
            "ifa": device.ifa if ids else None,
            "lmt": lmt,
            "language": device.language,
            "geo": _outbound_geo(ctx.geo, precise=precise, coppa=coppa),
        }
    )


def _outbound_geo(geo: context.Geo, *, precise: bool, coppa: bool) -> dict[str, Any]:
    region = geo.region
    if region and geo.country and region.startswith(f"{geo.country}-"):
        region = region[len(geo.country) + 1 :]
    if coppa:  # country and region only (we never send metro)
        lat = lon = None
    elif precise:
        lat, lon = geo.lat, geo.lon
    else:
        lat, lon = coarse_coordinate(geo.lat), coarse_coordinate(geo.lon)
    return _compact(
        {
            "lat": lat,
            "lon": lon,
            "type": GEO_TYPE_IP if geo.source in ("geoip", "header") else None,
            "country": _TO_ALPHA3.get(geo.country) if geo.country else None,
            "region": region,
            "city": None if coppa else geo.city,
            "zip": geo.zip if precise else None,
        }
    )


def _outbound_user(ctx: AdContext, *, ids: bool, buyer_uid: str | None) -> dict[str, Any]:
    segments = [{"id": segment} for segment in ctx.segments] if ids else []
    return _compact(
        {
            "id": ctx.user_id if ids else None,
            "buyeruid": buyer_uid if ids else None,
            "consent": ctx.privacy.tc_string,
            "data": [{"segment": segments}] if segments else None,
            "eids": list(ctx.eids) if ids else None,
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
