"""OpenRTB 2.6 on the wire: the request and response schemas, decoded by msgspec into
frozen Structs, with errors that name the JSON path at fault; JSON money helpers."""

import re
from decimal import Decimal
from typing import Annotated, Any

import msgspec

from serving.openrtb.codes import MAX_IMPS

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
    rqddurs: Annotated[list[Annotated[int, msgspec.Meta(ge=1)]], msgspec.Meta(max_length=32)] = []
    mincpmpersec: Decimal | None = None  # in imp.bidfloorcur
    # Ad pods: seconds and ads of a dynamic pod; the id, sequence and slot of a structured one.
    poddur: Annotated[int, msgspec.Meta(ge=1, le=3600)] | None = None
    maxseq: Annotated[int, msgspec.Meta(ge=1, le=30)] | None = None
    podid: str | None = None
    podseq: int | None = None
    slotinpod: int | None = None


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


class Uid(_Wire, frozen=True):
    id: NonEmpty
    atype: int | None = None
    ext: Ext = None


class Eid(_Wire, frozen=True):
    """An extended id (2.6 `user.eids[]`; 2.5 `user.ext.eids[]`): ids from one source."""

    source: NonEmpty
    uids: list[Uid] = []
    inserter: str | None = None
    matcher: str | None = None
    mm: int | None = None
    ext: Ext = None


class User(_Wire, frozen=True):
    id: str | None = None
    buyeruid: str | None = None
    keywords: Keywords = None
    kwarray: list[str] = []
    consent: str | None = None
    data: list[Data] = []
    # None: absent, so that the 2.5 location is read (an empty 2.6 list still wins).
    eids: Annotated[list[Eid], msgspec.Meta(max_length=50)] | None = None
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
    dur: int | None = None  # seconds, video and audio
    protocol: int | None = None  # AdCOM creative subtype (VAST 4.2 = 13, its wrapper 14)
    slotinpod: int | None = None
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
        if imp.video is not None and imp.video.mincpmpersec is not None:
            _check_money(imp.video.mincpmpersec, f"$.imp[{n}].video.mincpmpersec")
        for m, deal in enumerate(imp.pmp.deals if imp.pmp else ()):
            _check_money(deal.bidfloor, f"$.imp[{n}].pmp.deals[{m}].bidfloor")
    return request


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


def _compact(fields: dict[str, Any]) -> dict[str, Any]:
    """The fields that carry something: OpenRTB reads an absent field as "unknown"."""
    return {k: v for k, v in fields.items() if v is not None and v != [] and v != {} and v != ""}


def _money(value: Decimal) -> msgspec.Raw:
    # str(Decimal) switches to exponent form ("1E+1", "1E-7"); write the plain digits.
    if not value.is_finite():
        raise ValueError(f"not a finite amount: {value}")
    return msgspec.Raw(format(value, "f").encode())
