"""Per-candidate checks after the index lookup, each failing with a named reason.

The index (`serving.index`) already matched placement, slot, country, device type and
channel. What is left is checked here, cheapest first, and only for the few candidates a
request actually scans. The reasons are stable strings: they are counted per line item
("why didn't my line deliver") and shown by `?explain=1`.
"""

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo

from serving.blocks import adomain_blocked
from serving.context import AUDIO, VIDEO, AdContext, Imp
from serving.index import ECPM_PLACES, Candidate
from serving.snapshot import CAP_PERIODS, CreativeSnap, LineItemSnap

# Reasons, in the order they are checked.
TAKEN = "won_other_slot"
NOT_STARTED = "not_started"
ENDED = "ended"
BUDGET = "budget_exhausted"
COPPA = "coppa_not_child_safe"
REGION = "region"
PROPERTY = "property"
DAYPART = "daypart"
KEYWORDS = "keywords"
NEGATIVE_KEYWORD = "negative_keyword"
SEGMENTS_NO_CONSENT = "segments_without_consent"
SEGMENTS = "segments"
CATEGORY = "content_category"
DEAL_NOT_OFFERED = "deal_not_offered"
PRIVATE_AUCTION = "private_auction"
CAP_NO_ID = "frequency_cap_without_id"
CAP = "frequency_cap"
CREATIVE_BLOCKED = "creative_blocked"
PACING = "pacing"
DYNAMIC_DOWN = "dynamic_down"
# Index-level reasons, only for explain (the hot path never sees these line items).
PLACEMENT = "placement"
SLOT = "size_or_format"
COUNTRY = "country"
DEVICE = "device_type"
CHANNEL = "channel"


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@lru_cache(maxsize=1024)
def _minute_of_week(zone: str, minute: int) -> tuple[int, int]:
    """(weekday, minute of day) in a time zone, for an epoch minute; cached per minute."""
    local = datetime.fromtimestamp(minute * 60, _zone(zone))
    return local.weekday(), local.hour * 60 + local.minute


def category_blocked(categories: list[str] | tuple[str, ...], blocked: frozenset[str]) -> bool:
    """A blocked tier-1 category ("IAB7") also blocks its children ("IAB7-39")."""
    if not blocked:
        return False
    return any(c in blocked or c.split("-", 1)[0] in blocked for c in categories)


def _category_match(wanted: list[str], page: tuple[str, ...]) -> bool:
    # Targeting "IAB7" matches pages in IAB7 and any IAB7-n; "IAB7-39" only that one.
    for have in page:
        parent = have.split("-", 1)[0]
        for w in wanted:
            if w in (have, parent):
                return True
    return False


def cap_fields(li: LineItemSnap, now: float) -> list[tuple[str, int, int]]:
    """(hash field, limit, ttl) for each of a line item's caps at this moment."""
    fields = []
    for count, period in li.frequency_caps:
        seconds = CAP_PERIODS[period]
        bucket = int(now // seconds) if seconds else 0
        fields.append((f"{li.id}:{period}:{bucket}", count, seconds or 0))
    return fields


@dataclass(slots=True)
class RequestState:
    """What the checks need about one request, computed once."""

    ctx: AdContext
    now: float
    personalise: bool
    exhausted: frozenset[int] | set[int]
    pacing: Mapping[int, float]
    rng: random.Random
    # Frequency counters of the pseudonymous user (field → count), None without an id.
    caps: Mapping[str, int] | None = None
    coppa: bool = False
    taken: set[int] = field(default_factory=set)
    keywords: frozenset[str] = frozenset()
    segments: frozenset[str] = frozenset()
    minute: int = 0

    @classmethod
    def of(
        cls,
        ctx: AdContext,
        *,
        now: float,
        exhausted: frozenset[int] | set[int],
        pacing: Mapping[int, float],
        rng: random.Random,
        caps: Mapping[str, int] | None,
    ) -> "RequestState":
        permissions = ctx.permissions
        return cls(
            ctx=ctx,
            now=now,
            personalise=bool(permissions and permissions.personalise),
            exhausted=exhausted,
            pacing=pacing,
            rng=rng,
            caps=caps,
            coppa=ctx.privacy.coppa == 1,
            keywords=frozenset(ctx.keywords),
            segments=frozenset(ctx.segments),
            minute=int(now // 60),
        )


def reject_reason(c: Candidate, imp: Imp, st: RequestState) -> str | None:
    """Why this candidate may not bid on this imp, or None when it may."""
    li = c.line_item
    if li.id in st.taken:
        return TAKEN
    if li.start > st.now:
        return NOT_STARTED
    if li.end is not None and li.end <= st.now:
        return ENDED
    if li.campaign_id in st.exhausted:
        return BUDGET
    if c.post_filters:
        reason = _post_filter(li, imp, st)
        if reason:
            return reason
    if imp.private_auction and not li.deal_ids:
        return PRIVATE_AUCTION
    return None


def _post_filter(li: LineItemSnap, imp: Imp, st: RequestState) -> str | None:
    ctx = st.ctx
    if st.coppa and not li.child_safe:
        return COPPA
    if li.regions and ctx.geo.region not in li.regions:
        return REGION
    if li.properties and ctx.property not in li.properties:
        return PROPERTY
    if li.dayparts:
        day, minute = _minute_of_week(li.time_zone, st.minute)
        if not any(d == day and start <= minute < end for d, start, end in li.dayparts):
            return DAYPART
    if li.keywords and st.keywords.isdisjoint(li.keywords):
        return KEYWORDS
    if li.negative_keywords and not st.keywords.isdisjoint(li.negative_keywords):
        return NEGATIVE_KEYWORD
    if li.segments:
        if not st.personalise:
            return SEGMENTS_NO_CONSENT
        if st.segments.isdisjoint(li.segments):
            return SEGMENTS
    if li.categories and not _category_match(li.categories, ctx.content_categories):
        return CATEGORY
    if li.deal_ids and not any(d.id in li.deal_ids for d in imp.deals):
        return DEAL_NOT_OFFERED
    if li.frequency_caps:
        if st.caps is None:
            return CAP_NO_ID
        for name, limit, _ttl in cap_fields(li, st.now):
            if st.caps.get(name, 0) >= limit:
                return CAP
    return None


def creative_allowed(creative: CreativeSnap, imp: Imp, ctx: AdContext) -> bool:
    if ctx.badv and adomain_blocked(creative.adomain_keys, ctx.badv):
        return False
    if category_blocked(creative.categories, ctx.bcat):
        return False
    if imp.secure and not creative.secure:
        return False
    spec = (
        imp.video if creative.format == VIDEO else imp.audio if creative.format == AUDIO else None
    )
    if spec is not None:
        if spec.mimes and not any(m in spec.mimes for m in creative.mimes):
            return False
        if not spec.allows_duration(creative.duration):
            return False
    return True


def allowed_creatives(
    c: Candidate, imp: Imp, ctx: AdContext
) -> tuple[tuple[CreativeSnap, ...], tuple[int, ...]]:
    """The candidate's creatives this imp accepts, with their rotation weights."""
    if not (ctx.badv or ctx.bcat or imp.secure or imp.video or imp.audio):
        return c.creatives, c.weights
    kept = [
        (cr, w)
        for cr, w in zip(c.creatives, c.weights, strict=True)
        if creative_allowed(cr, imp, ctx)
    ]
    if len(kept) == len(c.creatives):
        # The candidate's own tuples: nothing to allocate, and serving.scoring's per
        # candidate cache knows them by identity.
        return c.creatives, c.weights
    return tuple(cr for cr, _ in kept), tuple(w for _, w in kept)


class PacingRates(dict[int, float]):
    """Line item id → pass-through probability from the pacing controller (a line item that
    is missing passes), with the two other things serving applies per line item: line items
    whose own budget is spent today, and the bid multipliers of dynamic-down line items."""

    def __init__(
        self,
        rates: Mapping[int, float] | None = None,
        *,
        exhausted: frozenset[int] = frozenset(),
        multipliers: Mapping[int, Decimal] | None = None,
    ) -> None:
        super().__init__(rates or {})
        self.exhausted = exhausted
        self.multipliers: Mapping[int, Decimal] = multipliers or {}

    def replace(self, *, exhausted: frozenset[int]) -> "PacingRates":
        return PacingRates(self, exhausted=exhausted, multipliers=self.multipliers)


def passes_pacing(li: LineItemSnap, st: RequestState) -> bool:
    rate = st.pacing.get(li.id)
    return rate is None or rate >= 1.0 or st.rng.random() < rate


def pacing_reason(li: LineItemSnap, st: RequestState) -> str | None:
    """BUDGET when the line item's own budget is spent, PACING when the controller's
    pass-through draw holds it back this time, None when it may bid."""
    pacing = st.pacing
    if isinstance(pacing, PacingRates) and li.id in pacing.exhausted:
        return BUDGET
    return None if passes_pacing(li, st) else PACING


def effective_ecpm(c: Candidate, st: RequestState, ecpm: Decimal | None = None) -> Decimal:
    """What a candidate bids: its eCPM (`ecpm` when the pCTR model priced it, else the
    booked one), lowered for a dynamic-down line item by the pacing controller's
    multiplier, never below its minimum bid's share of it and never above it
    (docs/pacing.md). The index sorts by the booked eCPM, an upper bound of this."""
    li = c.line_item
    ecpm = c.ecpm if ecpm is None else ecpm
    if li.bid_strategy != DYNAMIC_DOWN or not isinstance(st.pacing, PacingRates):
        return ecpm
    multiplier = st.pacing.multipliers.get(li.id)
    if multiplier is None or multiplier >= 1:
        return ecpm
    lowest = ecpm * li.min_bid / li.bid if li.min_bid and li.bid else Decimal(0)
    return max(lowest, ecpm * multiplier).quantize(ECPM_PLACES).min(ecpm)


def effective_floor(imp: Imp, placement_floor: Decimal) -> Decimal:
    return max(imp.bidfloor, placement_floor)


def index_reason(
    li: LineItemSnap,
    slots: list[str],
    has_slot: bool,
    placement_id: int,
    ctx: AdContext,
) -> str | None:
    """Why the index did not list this line item for the request (explain only)."""
    if li.placement_ids and placement_id not in li.placement_ids:
        return PLACEMENT
    if not has_slot:
        return SLOT
    country = ctx.geo.country
    countries = li.countries or sorted({r.split("-", 1)[0] for r in li.regions})
    if countries and country not in countries:
        return COUNTRY
    if li.device_types and ctx.device.devicetype not in li.device_types:
        return DEVICE
    if li.channels and ctx.channel not in li.channels:
        return CHANNEL
    return None
