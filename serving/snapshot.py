"""The serving snapshot: its wire schema and the in-memory index serving decides on.

`campaigns.snapshot` builds a `Snapshot` from the database and publishes it to Redis as
content-addressed JSON parts (a header, creatives and line items in small groups) listed by
a per-version `Manifest`. Every serving process decodes only the parts it has not seen yet
and updates its `serving.index.Index` from them.
"""

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

import msgspec

from serving.blocks import domain_keys
from serving.pctr import CtrModel


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
    # Derived from `adomain`, recomputed whenever a creative is built or decoded: every
    # domain a `badv` entry can block it by (`serving.blocks`). Sorted, so that the encoded
    # snapshot part (content-addressed) is the same from every process.
    adomain_keys: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        keys = tuple(sorted(domain_keys(self.adomain)))
        msgspec.structs.force_setattr(self, "adomain_keys", keys)


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
    # With a live pCTR model (docs/learning.md): the highest pCTR serving may use for a CPC
    # line item, which the index sorts it by (0: no model, rank by `predicted_ctr`).
    ctr_ceiling: float = 0.0
    # A CPM line item of a target-CPA campaign: the target in the platform currency and the
    # smoothed conversions per click it is bid with (eCPM = min(bid, CPA x pCTR x pCVR x 1000)).
    target_cpa: Decimal | None = None
    pcvr: float = 0.0
    # How a creative is drawn: "weighted" (`creative_weights` as set) or "optimise" (the
    # snapshot build set `creative_weights` to the optimiser's shares, in millionths).
    creative_rotation: str = "weighted"
    # Derived on decoding, for integer arithmetic on the hot path: micros of `bid`, `target_cpa`.
    bid_micros: int = 0
    target_cpa_micros: int = 0

    def __post_init__(self) -> None:
        msgspec.structs.force_setattr(self, "bid_micros", int(self.bid * 1_000_000))
        if self.target_cpa is not None:
            micros = int(self.target_cpa * 1_000_000)
            msgspec.structs.force_setattr(self, "target_cpa_micros", micros)


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


class VendorClaims(msgspec.Struct, frozen=True):
    """A buyer's vendor as the Global Vendor List declares it, computed once per snapshot so
    that serving never reads the GVL (`compliance.vendors.VendorDeclarations`)."""

    gvl_version: int
    listed: bool  # False: absent from that GVL, or deleted from it
    purposes: frozenset[int] = frozenset()
    leg_int_purposes: frozenset[int] = frozenset()
    flexible_purposes: frozenset[int] = frozenset()
    special_features: frozenset[int] = frozenset()


class BuyerSnap(msgspec.Struct, frozen=True):
    """An external OpenRTB buyer (`serving.models.Buyer`), as serving calls it."""

    id: int
    name: str
    endpoint: str
    gvl_vendor_id: int | None
    timeout_ms: int
    qps_cap: int  # for the whole fleet (serving.limits.fleet); 0: no cap
    currency: str
    supports_coppa: bool
    # None: no GVL loaded (GDPR traffic is judged by the TC string alone).
    gvl: VendorClaims | None = None
    sync_url: str = ""  # empty: no user sync with this buyer
    sync_uid_macro: str = "$UID"


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
    # Platform units one unit of each currency is worth, at build time (feed or FX_RATES).
    fx: dict[str, Decimal] = {}
    # sha256 of active staff API tokens: they may ask serving for `?explain=1`.
    staff_token_hashes: list[str] = []
    # The live pCTR model's weights (docs/learning.md); None while no model is live.
    ctr_model: CtrModel | None = None
    # The live pCVR model's (conversions per click), in the same form; None while none is.
    cvr_model: CtrModel | None = None


class SnapshotHeader(msgspec.Struct, frozen=True, tag="h"):
    """Everything but creatives and line items: small, and one part of its own.

    It holds neither the version nor the build time (those are in the manifest), so a
    version that changed no placement, campaign, buyer, deal or token shares its header
    part with the version before it."""

    currency: str
    placements: list[PlacementSnap]
    campaigns: list[CampaignSnap]
    buyers: list[BuyerSnap]
    deals: list[DealSnap]
    staff_token_hashes: list[str] = []
    fx: dict[str, Decimal] = {}
    # In the header (a part shared by every version until something in it changes), so a
    # serving process decodes the weights again only when the header changes.
    ctr_model: CtrModel | None = None
    cvr_model: CtrModel | None = None


class CreativesPart(msgspec.Struct, frozen=True, tag="c"):
    items: list[CreativeSnap]


class LineItemsPart(msgspec.Struct, frozen=True, tag="l"):
    items: list[LineItemSnap]


Part = SnapshotHeader | CreativesPart | LineItemsPart


class Manifest(msgspec.Struct, frozen=True, tag="m"):
    """What a version is made of: the content hashes of its parts, in order.

    Each part is stored once under its hash (`RedisKeys.snapshot_part`) and shared by every
    version that contains it, so publishing an edit writes the parts that changed and a
    small manifest, and a serving process fetches and decodes only the parts it lacks."""

    version: int
    built_at: str
    header: str
    creatives: list[str]
    line_items: list[str]

    def parts(self) -> list[str]:
        return [self.header, *self.creatives, *self.line_items]


@dataclass(frozen=True, slots=True)
class EncodedSnapshot:
    """A snapshot as published: its manifest and its parts by hash (manifest order)."""

    version: int
    manifest: bytes
    parts: dict[str, bytes]

    @property
    def size(self) -> int:
        return len(self.manifest) + sum(len(p) for p in self.parts.values())


# Parts are cut where the item's own id says so, not every N items: an item is the last of
# its part when a hash of its id falls in 1/PART_TARGET of the range. Inserting or removing
# a line item then changes the one part it lands in (or, for an item that is itself a
# boundary, two), not every part after it, and editing one changes exactly one. PART_MAX
# bounds an unlucky run without boundaries. Serving decodes one part per step of the event
# loop, so a part stays small: ~64 line items decode in a fraction of a millisecond.
PART_TARGET = 64
PART_MAX = 256
_GOLDEN = 0x9E3779B97F4A7C15  # Fibonacci hashing: spreads sequential ids evenly
_MASK64 = (1 << 64) - 1

_encoder = msgspec.json.Encoder(decimal_format="string")
_part_decoder = msgspec.json.Decoder(Part)
_manifest_decoder = msgspec.json.Decoder(Manifest)


def header_of(snapshot: Snapshot) -> SnapshotHeader:
    return SnapshotHeader(
        currency=snapshot.currency,
        placements=snapshot.placements,
        campaigns=snapshot.campaigns,
        buyers=snapshot.buyers,
        deals=snapshot.deals,
        staff_token_hashes=snapshot.staff_token_hashes,
        fx=snapshot.fx,
        ctr_model=snapshot.ctr_model,
        cvr_model=snapshot.cvr_model,
    )


def _ends_part(item_id: int, target: int) -> bool:
    return ((item_id * _GOLDEN) & _MASK64) % target == target - 1


def group_by_id[T: (CreativeSnap, LineItemSnap)](
    items: Iterable[T], target: int | None = None, most: int | None = None
) -> list[list[T]]:
    """Items sorted by id, cut into parts at id-chosen boundaries (see PART_TARGET)."""
    target, most = target or PART_TARGET, most or PART_MAX
    groups: list[list[T]] = []
    current: list[T] = []
    for item in sorted(items, key=lambda i: i.id):
        current.append(item)
        if _ends_part(item.id, target) or len(current) >= most:
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    return groups


def part_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def encode_snapshot(snapshot: Snapshot) -> EncodedSnapshot:
    parts: dict[str, bytes] = {}

    def add(part: Part) -> str:
        data = _encoder.encode(part)
        digest = part_hash(data)
        parts[digest] = data
        return digest

    header = add(header_of(snapshot))
    creatives = [add(CreativesPart(g)) for g in group_by_id(snapshot.creatives)]
    line_items = [add(LineItemsPart(g)) for g in group_by_id(snapshot.line_items)]
    manifest = Manifest(snapshot.version, snapshot.built_at, header, creatives, line_items)
    return EncodedSnapshot(snapshot.version, _encoder.encode(manifest), parts)


def decode_manifest(data: bytes | str) -> Manifest:
    return _manifest_decoder.decode(data)


def decode_part(data: bytes | str) -> Part:
    return _part_decoder.decode(data)


def decode_snapshot(manifest: bytes | str, parts: Mapping[str, bytes | str]) -> Snapshot:
    """The whole snapshot in one call (tests and tools), from a manifest and its parts."""
    m = decode_manifest(manifest)
    header = decode_part(parts[m.header])
    if not isinstance(header, SnapshotHeader):
        raise ValueError(f"part {m.header} is not a header")
    creatives: list[CreativeSnap] = []
    line_items: list[LineItemSnap] = []
    for digest in [*m.creatives, *m.line_items]:
        part = decode_part(parts[digest])
        if isinstance(part, CreativesPart):
            creatives.extend(part.items)
        elif isinstance(part, LineItemsPart):
            line_items.extend(part.items)
    return Snapshot(
        version=m.version,
        built_at=m.built_at,
        currency=header.currency,
        placements=header.placements,
        campaigns=header.campaigns,
        buyers=header.buyers,
        deals=header.deals,
        staff_token_hashes=header.staff_token_hashes,
        ctr_model=header.ctr_model,
        cvr_model=header.cvr_model,
        creatives=creatives,
        line_items=line_items,
    )
