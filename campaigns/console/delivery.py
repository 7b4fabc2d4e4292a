"""What the campaign list says about each campaign: whether it delivers and why not, its
spend today and over its lifetime (the pacing counters in Redis), and its pace.

Everything is read for one page of campaigns at once: a fixed number of queries (campaigns,
line items, their placements and creatives, the active placements) and one Redis pipeline,
however many rows the page holds.
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Prefetch

from campaigns.models import (
    Campaign,
    CampaignStatus,
    LineItem,
    LineItemCreative,
    LineItemStatus,
    Placement,
)
from campaigns.pacing.ledger import to_money
from campaigns.pacing.schedule import day_schedule
from campaigns.pacing.services import ledger
from creatives.models import ReviewStatus

# Spend within this share of the schedule counts as on pace.
ON_PACE = 0.10


class Delivery:
    DELIVERING = "Delivering"
    SCHEDULED = "Scheduled"
    PAUSED = "Paused"
    DRAFT = "Draft"
    OUT_OF_DAILY_BUDGET = "Out of daily budget"
    OUT_OF_LIFETIME_BUDGET = "Out of lifetime budget"
    ENDED = "Ended"
    ARCHIVED = "Archived"
    NO_LINE_ITEM = "Not delivering: no active line item"
    UNDER_REVIEW = "Not delivering: creatives under review"
    NO_APPROVED_CREATIVE = "Not delivering: no approved creative"
    NO_INVENTORY = "Not delivering: targeting matches no inventory"


@dataclass
class CampaignState:
    delivery: str
    spend_today: Decimal
    spend_lifetime: Decimal
    pace: str  # "On pace", "Ahead", "Behind" or "" (no pacing data today)
    pacing_error: float | None
    # The controller's pass-through rate today (1.0 before its first tick of the day) and
    # the day's spend target (the daily budget, or the lifetime budget's share of today).
    pass_through: float = 1.0
    budget_today: Decimal | None = None
    wins_today: int = 0
    clicks_today: int = 0

    @property
    def ok(self) -> bool:
        return self.delivery == Delivery.DELIVERING


def line_items_prefetch(*, full: bool = False) -> "Prefetch[Any]":
    """The line items of listed campaigns, with what `line_item_delivery` reads: only those
    columns for a list (JSON targeting decoded for hundreds of rows is most of its time),
    everything with `full` (a campaign's page says the targeting in words)."""
    assignments = LineItemCreative.objects.select_related("creative").order_by("id")
    line_items = LineItem.objects.order_by("name", "id")
    placements = Placement.objects.select_related("publisher")
    if not full:
        assignments = assignments.only(
            "id", "line_item_id", "weight", "creative__id", "creative__name",
            "creative__status", "creative__archived_at", "creative__kind", "creative__width",
            "creative__height",
        )  # fmt: skip
        line_items = line_items.only("id", "campaign_id", "name", "status", "sizes")
        placements = Placement.objects.only("id")
    return Prefetch(
        "line_items",
        queryset=line_items.prefetch_related(
            Prefetch("placements", queryset=placements),
            Prefetch("assignments", queryset=assignments),
        ),
    )


def _servable(assignment: LineItemCreative) -> bool:
    c = assignment.creative
    return c.status == ReviewStatus.APPROVED and c.archived_at is None


def _fits(assignment: LineItemCreative, line_item: LineItem) -> bool:
    # The snapshot's rule: a banner creative shows only in a size the line item targets.
    c = assignment.creative
    return c.serving_format != "banner" or c.size in line_item.sizes


def line_item_delivery(line_item: LineItem, inventory: list[Placement]) -> str:
    """Why an active line item cannot deliver, or Delivering."""
    assignments = list(line_item.assignments.all())
    servable = [a for a in assignments if _servable(a) and _fits(a, line_item)]
    if not servable:
        pending = any(
            a.creative.status == ReviewStatus.PENDING and a.creative.archived_at is None
            for a in assignments
        )
        return Delivery.UNDER_REVIEW if pending else Delivery.NO_APPROVED_CREATIVE
    chosen = {p.pk for p in line_item.placements.all()}
    sizes = set(line_item.sizes)
    for placement in inventory:
        if (not chosen or placement.pk in chosen) and sizes & set(placement.sizes):
            return Delivery.DELIVERING
    return Delivery.NO_INVENTORY


def _pace(view: dict[str, Any] | None, day: str) -> tuple[str, float | None]:
    """The pacing controller's last view of the campaign today: spend against schedule."""
    if not view or view.get("day") != day or not view.get("schedule"):
        return "", None
    error = view["spent"] / view["schedule"] - 1
    if abs(error) <= ON_PACE:
        return "On pace", error
    return ("Ahead" if error > 0 else "Behind"), error


def _campaign_gate(
    campaign: Campaign, now: datetime, exhausted: bool, spend_lifetime: Decimal
) -> str | None:
    """Why the campaign itself cannot deliver (status, flight, budgets), or None."""
    if campaign.status == CampaignStatus.ARCHIVED:
        return Delivery.ARCHIVED
    if campaign.status == CampaignStatus.DRAFT:
        return Delivery.DRAFT
    if campaign.status == CampaignStatus.PAUSED:
        return Delivery.PAUSED
    if campaign.end_at is not None and campaign.end_at <= now:
        return Delivery.ENDED
    if campaign.start_at > now:
        return Delivery.SCHEDULED
    if campaign.lifetime_budget is not None and spend_lifetime >= campaign.lifetime_budget:
        return Delivery.OUT_OF_LIFETIME_BUDGET
    if exhausted:
        return Delivery.OUT_OF_DAILY_BUDGET
    return None


def line_items_verdict(campaign: Campaign, inventory: list[Placement]) -> str:
    """Whether the campaign's active line items (prefetched) can deliver, and why not."""
    live = [li for li in campaign.line_items.all() if li.status == LineItemStatus.ACTIVE]
    if not live:
        return Delivery.NO_LINE_ITEM
    reasons = [line_item_delivery(li, inventory) for li in live]
    if Delivery.DELIVERING in reasons:
        return Delivery.DELIVERING
    # The reason closest to delivering: a review is a wait, inventory a targeting choice.
    for reason in (Delivery.UNDER_REVIEW, Delivery.NO_INVENTORY):
        if reason in reasons:
            return reason
    return Delivery.NO_APPROVED_CREATIVE


def active_inventory() -> list[Placement]:
    """The placements an advertiser may buy: every active one."""
    return list(Placement.objects.filter(is_active=True).order_by("id"))


def campaign_states(
    campaigns: list[Campaign],
    now: datetime,
    inventory: list[Placement] | None = None,
    verdicts: dict[int, str] | None = None,
) -> dict[int, CampaignState]:
    """Delivery, spend and pace of each campaign, in one Redis trip. The line items' part of
    delivery is `verdicts[id]` when given (the live feed's, refreshed less often), else read
    from the prefetched line items."""
    if not campaigns:
        return {}
    verdicts = verdicts or {}
    if inventory is None and any(c.pk not in verdicts for c in campaigns):
        inventory = active_inventory()
    days = {c.pk: day_schedule(now, c.advertiser.time_zone, c.pacing_mode).day for c in campaigns}
    led = ledger()
    counters = led.read(
        [(c.pk, days[c.pk]) for c in campaigns] + [(c.pk, "life") for c in campaigns]
    )
    exhausted: set[str] = set()
    for day in set(days.values()):
        exhausted |= {f"{day}:{m}" for m in led.exhausted(day)}
    views = led.read_states([f"v{c.pk}" for c in campaigns])
    states = {}
    for c in campaigns:
        day = days[c.pk]
        today, life = counters[(c.pk, day)], counters[(c.pk, "life")]
        lifetime = to_money(life.spend)
        view = views.get(f"v{c.pk}") or {}
        pace, error = _pace(view, day)
        fresh = view.get("day") == day
        states[c.pk] = CampaignState(
            delivery=_campaign_gate(c, now, f"{day}:{c.pk}" in exhausted, lifetime)
            or verdicts.get(c.pk)
            or line_items_verdict(c, inventory or []),
            spend_today=to_money(today.spend),
            spend_lifetime=lifetime,
            pace=pace,
            pacing_error=error,
            pass_through=float(view["rate"]) if fresh else 1.0,
            budget_today=to_money(view["target"]) if fresh else c.daily_budget,
            wins_today=today.impressions,
            clicks_today=today.clicks,
        )
    return states
