"""The serving snapshot: its wire schema and the in-memory index serving decides on.

`campaigns.snapshot` builds a `Snapshot` from the database and publishes it to Redis as
JSON. Every serving process decodes it once per version and compiles it into a
`serving.index.Index`.
"""

from collections.abc import Iterator
from decimal import Decimal

import msgspec


class CreativeSnap(msgspec.Struct, frozen=True):
    id: int
    size: str  # "WxH"; for audio "0x0"
    # What serving fills in and returns, with %%CLICK_URL%%, %%IMP_URL%% and %%ERROR_URL%%
    # left for it: HTML for banner and HTML5 (and native's HTML form), a VAST 4.2 document
    # for video and audio.
    markup: str
    click_url: str
    format: str = "banner"  # "banner", "video", "audio" or "native"
    # Advertiser domains and IAB categories, for badv/bcat blocks and OpenRTB adomain/cat.
    adomain: list[str] = []
    categories: list[str] = []
    secure: bool = True  # every resource it loads is https
    duration: int = 0  # seconds, video and audio
    mimes: list[str] = []  # media types of the renditions, video and audio
    # Native: the OpenRTB Native 1.2 response JSON, with the same placeholders as markup.
    native: str = ""


# Priority tiers, in serving order (campaigns.models.PriorityTier).
TIERS = {"sponsorship": 0, "guaranteed": 1, "price": 2, "house": 3}
PRICE_TIER = TIERS["price"]
CAP_PERIODS = {"minute": 60, "hour": 3600, "day": 86400, "lifetime": 0}


class LineItemSnap(msgspec.Struct, frozen=True):
    id: int
    campaign_id: int
    advertiser_id: int
    # In the platform currency (SERVING_CURRENCY): CPM, or per click for CPC.
    bid: Decimal
    sizes: list[str]  # banner sizes; video, audio and native match on format
    start: float  # campaign flight, epoch seconds
    end: float | None
    creative_ids: list[int]
    creative_weights: list[int]  # rotation weights, parallel to creative_ids
    placement_ids: list[int] = []  # empty: every placement
    tier: int = PRICE_TIER
    bid_type: str = "cpm"  # "cpm" or "cpc"
    # CPC: the click-through rate that turns the bid into an eCPM (a per-line-item prior
    # until a CTR model exists).
    predicted_ctr: float = 0.0
    # The campaign's currency and how many platform units one unit of it is worth, to
    # charge spend in the currency the budget is in.
    currency: str = "USD"
    fx_rate: Decimal = Decimal(1)
    # Targeting; an empty list means any.
    countries: list[str] = []
    regions: list[str] = []
    device_types: list[int] = []
    channels: list[str] = []
    properties: list[str] = []
    # (weekday, start minute, end minute) in `time_zone`; Monday is 0.
    dayparts: list[tuple[int, int, int]] = []
    time_zone: str = "UTC"
    keywords: list[str] = []  # lower case
    negative_keywords: list[str] = []
    segments: list[str] = []
    categories: list[str] = []  # IAB content categories of the page/app
    child_safe: bool = False
    deal_ids: list[str] = []  # only serves on requests offering one of these deals
    frequency_caps: list[tuple[int, str]] = []  # (count, period)
    # Budgets of the line item itself, in the campaign currency (None: only the campaign's).
    daily_budget: Decimal | None = None
    lifetime_budget: Decimal | None = None
    # "fixed" or "dynamic_down": the pacing controller may lower a dynamic bid toward
    # `min_bid` (platform currency, like `bid`), never raise it (docs/pacing.md).
    bid_strategy: str = "fixed"
    min_bid: Decimal | None = None


class CampaignSnap(msgspec.Struct, frozen=True):
    id: int
    daily_budget: Decimal  # in the campaign currency
    lifetime_budget: Decimal | None = None
    # The advertiser's time zone: the campaign's day, for daily spend, starts at its midnight.
    time_zone: str = "UTC"


class DealSnap(msgspec.Struct, frozen=True):
    deal_id: str
    advertiser_id: int
    floor: Decimal  # platform currency
    fixed_price: Decimal | None = None  # set: a fixed-price deal (at = 3)


class PlacementSnap(msgspec.Struct, frozen=True):
    id: int
    publisher_id: int
    key: str
    sizes: list[str]
    floor_cpm: Decimal


class BuyerSnap(msgspec.Struct, frozen=True):
    """An external OpenRTB buyer (`serving.models.Buyer`), as serving calls it."""

    id: int
    name: str
    endpoint: str
    gvl_vendor_id: int | None
    timeout_ms: int
    qps_cap: int  # per serving process; 0: no cap
    currency: str
    supports_coppa: bool


class Snapshot(msgspec.Struct, frozen=True):
    version: int
    built_at: str
    placements: list[PlacementSnap]
    campaigns: list[CampaignSnap]
    # Rendered once each, however many line items show them.
    creatives: list[CreativeSnap]
    line_items: list[LineItemSnap]
    buyers: list[BuyerSnap] = []  # enabled ones only
    deals: list[DealSnap] = []
    currency: str = "USD"
    # sha256 of active staff API tokens: they may ask serving for `?explain=1`.
    staff_token_hashes: list[str] = []


class SnapshotHeader(msgspec.Struct, frozen=True, tag="h"):
    """The small part of a snapshot, published first."""

    version: int
    built_at: str
    currency: str
    placements: list[PlacementSnap]
    campaigns: list[CampaignSnap]
    buyers: list[BuyerSnap]
    deals: list[DealSnap]
    staff_token_hashes: list[str] = []


class CreativesPart(msgspec.Struct, frozen=True, tag="c"):
    items: list[CreativeSnap]


class LineItemsPart(msgspec.Struct, frozen=True, tag="l"):
    items: list[LineItemSnap]


# Published as JSON lines: the header, then parts of at most PART_SIZE creatives or line
# items (creatives first). Serving decodes one line at a time and yields in between: a
# 10,000-item snapshot decoded in one call would hold the event loop for tens of ms.
PART_SIZE = 250

_encoder = msgspec.json.Encoder(decimal_format="string")
_part_decoder = msgspec.json.Decoder(SnapshotHeader | CreativesPart | LineItemsPart)


def header_of(snapshot: Snapshot) -> SnapshotHeader:
    return SnapshotHeader(
        version=snapshot.version,
        built_at=snapshot.built_at,
        currency=snapshot.currency,
        placements=snapshot.placements,
        campaigns=snapshot.campaigns,
        buyers=snapshot.buyers,
        deals=snapshot.deals,
        staff_token_hashes=snapshot.staff_token_hashes,
    )


def encode_snapshot(snapshot: Snapshot) -> bytes:
    lines = [_encoder.encode(header_of(snapshot))]
    for n in range(0, len(snapshot.creatives), PART_SIZE):
        lines.append(_encoder.encode(CreativesPart(snapshot.creatives[n : n + PART_SIZE])))
    for n in range(0, len(snapshot.line_items), PART_SIZE):
        lines.append(_encoder.encode(LineItemsPart(snapshot.line_items[n : n + PART_SIZE])))
    return b"\n".join(lines)


def iter_parts(data: bytes) -> Iterator[SnapshotHeader | CreativesPart | LineItemsPart]:
    for line in data.split(b"\n"):
        yield _part_decoder.decode(line)


def decode_snapshot(data: bytes) -> Snapshot:
    """The whole snapshot in one call (tests and tools)."""
    parts = iter_parts(data)
    header = next(parts)
    if not isinstance(header, SnapshotHeader):
        raise ValueError("a snapshot starts with its header")
    creatives: list[CreativeSnap] = []
    line_items: list[LineItemSnap] = []
    for part in parts:
        if isinstance(part, CreativesPart):
            creatives.extend(part.items)
        elif isinstance(part, LineItemsPart):
            line_items.extend(part.items)
    return Snapshot(
        version=header.version,
        built_at=header.built_at,
        currency=header.currency,
        placements=header.placements,
        campaigns=header.campaigns,
        buyers=header.buyers,
        deals=header.deals,
        staff_token_hashes=header.staff_token_hashes,
        creatives=creatives,
        line_items=line_items,
    )
