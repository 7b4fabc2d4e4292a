"""The serving snapshot: its wire schema and the in-memory index serving decides on.

`campaigns.snapshot` builds a `Snapshot` from the database and publishes it to Redis as
JSON. Every serving process decodes it once per version and compiles an `Index`: lists of
line items per (placement, size) and per size, sorted by bid, so a decision scans a few
entries with early exit instead of the whole book.
"""

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
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


class LineItemSnap(msgspec.Struct, frozen=True):
    id: int
    campaign_id: int
    advertiser_id: int
    cpm: Decimal
    sizes: list[str]
    placement_ids: list[int]  # empty: every placement
    start: float  # campaign flight, epoch seconds
    end: float | None
    creative_ids: list[int]
    creative_weights: list[int]  # rotation weights, parallel to creative_ids


class CampaignSnap(msgspec.Struct, frozen=True):
    id: int
    daily_budget: Decimal


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


snapshot_encoder = msgspec.json.Encoder(decimal_format="string")
snapshot_decoder = msgspec.json.Decoder(Snapshot)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A line item as it competes for one size."""

    line_item: LineItemSnap
    size: str
    creatives: tuple[CreativeSnap, ...]
    weights: tuple[int, ...]


@dataclass(slots=True)
class Index:
    version: int = 0
    placements_by_key: dict[str, PlacementSnap] = field(default_factory=dict)
    budgets: dict[int, Decimal] = field(default_factory=dict)
    by_size: dict[str, list[Candidate]] = field(default_factory=dict)
    by_placement_size: dict[tuple[int, str], list[Candidate]] = field(default_factory=dict)

    def candidate_lists(self, placement_id: int, size: str) -> tuple[list[Candidate], ...]:
        """Run-of-network and placement-targeted candidates for one size, each sorted by bid."""
        return (
            self.by_size.get(size, []),
            self.by_placement_size.get((placement_id, size), []),
        )


def _add_line_item(
    li: LineItemSnap,
    creatives_by_id: dict[int, CreativeSnap],
    by_size: dict[str, list[Candidate]],
    by_placement_size: dict[tuple[int, str], list[Candidate]],
) -> None:
    own = [
        (creatives_by_id[i], w)
        for i, w in zip(li.creative_ids, li.creative_weights, strict=True)
        if i in creatives_by_id
    ]
    for size in li.sizes:
        fitting = [(c, w) for c, w in own if c.size == size]
        if not fitting:
            continue  # nothing to show in this size
        candidate = Candidate(li, size, tuple(c for c, _ in fitting), tuple(w for _, w in fitting))
        if li.placement_ids:
            for pid in li.placement_ids:
                by_placement_size[(pid, size)].append(candidate)
        else:
            by_size[size].append(candidate)


def _sort_key(c: Candidate) -> tuple[Decimal, int]:
    return (-c.line_item.cpm, c.line_item.id)


def compile_index(snapshot: Snapshot) -> Index:
    """Compile the index in one go (tests and tools; serving uses `compile_index_async`)."""
    by_size: dict[str, list[Candidate]] = defaultdict(list)
    by_placement_size: dict[tuple[int, str], list[Candidate]] = defaultdict(list)
    creatives_by_id = {c.id: c for c in snapshot.creatives}
    for li in snapshot.line_items:
        _add_line_item(li, creatives_by_id, by_size, by_placement_size)
    return _finish(snapshot, by_size, by_placement_size)


async def compile_index_async(snapshot: Snapshot, chunk: int = 500) -> Index:
    """Compile the index in chunks, yielding to the event loop so requests keep flowing."""
    by_size: dict[str, list[Candidate]] = defaultdict(list)
    by_placement_size: dict[tuple[int, str], list[Candidate]] = defaultdict(list)
    creatives_by_id = {c.id: c for c in snapshot.creatives}
    for start in range(0, len(snapshot.line_items), chunk):
        for li in snapshot.line_items[start : start + chunk]:
            _add_line_item(li, creatives_by_id, by_size, by_placement_size)
        await asyncio.sleep(0)
    return _finish(snapshot, by_size, by_placement_size)


def _finish(
    snapshot: Snapshot,
    by_size: dict[str, list[Candidate]],
    by_placement_size: dict[tuple[int, str], list[Candidate]],
) -> Index:
    for lists in (by_size, by_placement_size):
        for candidates in lists.values():
            candidates.sort(key=_sort_key)
    return Index(
        version=snapshot.version,
        placements_by_key={p.key: p for p in snapshot.placements},
        budgets={c.id: c.daily_budget for c in snapshot.campaigns},
        by_size=dict(by_size),
        by_placement_size=dict(by_placement_size),
    )
