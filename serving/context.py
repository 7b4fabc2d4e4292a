"""One ad request as the orchestrator sees it, whatever door it came in by.

`POST /v1/ad` and `POST /openrtb2/auction` decode into different wire schemas
(`serving.schema`, `serving.openrtb`) and both map onto an `AdContext`: the slots (OpenRTB
"imps") to fill, what is known of the device, place and user after enrichment, the buyer's
blocks and deal rules, and the privacy signals. Targeting, the auction, external buyers and
rendering read only this.

Money here is always in the platform currency (`SERVING_CURRENCY`); floors given in another
currency are converted when the context is built.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from compliance.policy import Permissions, PrivacySignals

NO_BUYER_UIDS: Mapping[int, str] = MappingProxyType({})

# OpenRTB 2.6 `imp` media types, as the request asks for them.
BANNER, VIDEO, AUDIO, NATIVE = "banner", "video", "audio", "native"
# Channels, as line items target them (campaigns.validators.CHANNELS).
WEB, APP, CTV, VOICE, DOOH = "web", "app", "ctv", "voice", "dooh"


@dataclass(frozen=True, slots=True)
class DealRequest:
    """A deal offered on an imp (`imp.pmp.deals[]`)."""

    id: str
    bidfloor: Decimal = Decimal(0)  # platform currency
    # 1 first price, 2 second price, 3 fixed price (the deal's own price); None: the request's.
    at: int | None = None
    wseat: tuple[str, ...] = ()
    wadomain: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class VideoSpec:
    mimes: tuple[str, ...] = ()
    minduration: int | None = None
    maxduration: int | None = None
    protocols: tuple[int, ...] = ()
    w: int | None = None
    h: int | None = None
    linearity: int | None = None
    skip: int | None = None
    startdelay: int | None = None
    # Exact durations the player accepts (OpenRTB 2.6 `rqddurs`, instead of min/max).
    rqddurs: tuple[int, ...] = ()
    # A floor per second of ad (`mincpmpersec`), platform currency.
    mincpmpersec: Decimal | None = None
    # Ad pods (OpenRTB 2.6): a dynamic pod has `poddur` (seconds) and `maxseq` (ads); the
    # imps of a structured pod share `podid`, one ad each. serving.pods fills them.
    podid: str | None = None
    podseq: int | None = None
    slotinpod: int | None = None
    poddur: int | None = None
    maxseq: int | None = None

    def allows_duration(self, seconds: int) -> bool:
        """Whether an ad of this many seconds fits: exactly one of `rqddurs` when given,
        else within `minduration`..`maxduration` (the same rule for our creatives and for
        buyers' `dur`)."""
        if self.rqddurs:
            return seconds in self.rqddurs
        if self.maxduration and seconds > self.maxduration:
            return False
        return not (self.minduration and seconds < self.minduration)

    def floor_for(self, seconds: int, floor: Decimal) -> Decimal:
        """The CPM floor of an ad of this many seconds: `mincpmpersec` x seconds where that
        is higher than the imp's floor (a per-second floor never lowers the imp's own)."""
        if self.mincpmpersec is None:
            return floor
        return max(floor, self.mincpmpersec * seconds)


@dataclass(frozen=True, slots=True)
class Imp:
    """One slot to fill."""

    id: str
    # Sizes as "WxH". For video, the player size when known.
    sizes: tuple[str, ...]
    # Which media types the slot accepts: a subset of BANNER, VIDEO, AUDIO, NATIVE.
    formats: frozenset[str] = frozenset({BANNER})
    bidfloor: Decimal = Decimal(0)  # platform currency, already converted
    secure: bool = True  # https-only creatives
    private_auction: bool = False  # pmp.private_auction = 1: only deal bids may win
    deals: tuple[DealRequest, ...] = ()
    video: VideoSpec | None = None
    audio: VideoSpec | None = None  # the same fields apply to audio
    # The OpenRTB Native request JSON (imp.native.request), passed through to buyers.
    native_request: str | None = None
    pos: int | None = None
    tagid: str | None = None

    @property
    def is_pod(self) -> bool:
        """A video imp that asks for an ad pod (dynamic: `poddur`; structured: `podid`)."""
        video = self.video
        return video is not None and (video.poddur is not None or video.podid is not None)


def has_pods(imps: list[Imp]) -> bool:
    """Whether any imp asks for an ad pod. A plain loop: on every OpenRTB request, and
    `any()` over a generator costs four times as much for the usual single banner imp."""
    for imp in imps:  # noqa: SIM110 - see above
        if imp.video is not None and imp.is_pod:
            return True
    return False


@dataclass(slots=True)
class Geo:
    country: str | None = None  # ISO 3166-1 alpha-2, upper case
    region: str | None = None  # ISO 3166-2, e.g. "US-CA"
    city: str | None = None
    zip: str | None = None
    lat: float | None = None
    lon: float | None = None
    source: str = ""  # "request", "header", "geoip" or "" (unknown)


@dataclass(slots=True)
class DeviceInfo:
    ua: str | None = None
    ip: str | None = None
    ipv6: str | None = None
    # OpenRTB 2.6 device type list (1 mobile/tablet, 2 PC, 3 CTV, 4 phone, 5 tablet,
    # 6 connected device, 7 set-top box, 8 OOH).
    devicetype: int | None = None
    os: str | None = None
    osv: str | None = None
    browser: str | None = None
    make: str | None = None
    model: str | None = None
    ifa: str | None = None
    lmt: int | None = None
    language: str | None = None
    is_crawler: bool = False


@dataclass(slots=True)
class AdContext:
    # Our id of this request, made by the server (`serving.ids`): the decisions' ids derive
    # from it, and it seeds their draws. Never the caller's.
    request_id: str
    source: str  # the door: "v1", "openrtb" or "vast"
    placement_key: str
    imps: list[Imp]
    device: DeviceInfo = field(default_factory=DeviceInfo)
    geo: Geo = field(default_factory=Geo)
    channel: str | None = None  # WEB, APP, CTV, VOICE or DOOH
    # Site or app: domain, page URL, app bundle, named property ("Fire TV").
    domain: str | None = None
    page: str | None = None
    bundle: str | None = None
    property: str | None = None
    content_categories: tuple[str, ...] = ()  # IAB categories of the page/app/content
    keywords: tuple[str, ...] = ()
    user_id: str | None = None  # as sent; serving pseudonymises it before any use
    buyer_uid: str | None = None
    # Each buyer's own id for this user, from the sync table (serving.sync): buyer id → uid.
    buyer_uids: Mapping[int, str] = NO_BUYER_UIDS
    segments: tuple[str, ...] = ()
    # Extended ids (OpenRTB `user.eids`) as received, as JSON objects; forwarded only to
    # buyers whose permission allows ids.
    eids: tuple[dict[str, Any], ...] = ()
    # Blocked advertiser domains, normalised (`serving.blocks.normalise_badv`).
    badv: frozenset[str] = frozenset()
    bcat: frozenset[str] = frozenset()  # blocked IAB categories (tier 1 blocks its children)
    bapp: frozenset[str] = frozenset()
    at: int = 2  # 1 first price, 2 second price
    tmax: int | None = None  # ms the caller waits, from its side
    cur: tuple[str, ...] = ()  # currencies the caller accepts
    test: bool = False
    privacy: PrivacySignals = field(default_factory=PrivacySignals)
    permissions: Permissions | None = None
    explain: bool = False
    now: float = 0.0
    # OpenRTB fields passed through to external buyers as received (source.schain etc.).
    source_ext: dict[str, object] | None = None
    # Whether any imp asks for an ad pod (serving.pods); set where the context is built.
    pods: bool = False
    # The caller's own request id (x-request-id, OpenRTB BidRequest.id): echoed and recorded
    # for correlation only.
    correlation_id: str = ""
    # `${AUCTION_ID}` and the id of the BidRequest each buyer gets: the publisher's
    # BidRequest.id verbatim on the OpenRTB door; "" elsewhere, meaning `request_id`.
    auction_id: str = ""
    # Set by the orchestrator: the pseudonymous user id ("" without consent for ids), the
    # truncated client address, and why the decision is invalid traffic ("" when it is not),
    # for the tracking tokens and the invalid-traffic rules (`serving.ivt`).
    pseudonym: str = ""
    network: str = ""
    ivt: str = ""
