"""The day's targets of each campaign and line item, and the campaign's day schedule."""

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import Prefetch

from campaigns.models import Campaign, GoalType, LineItem, LineItemStatus, PacingMode
from campaigns.pacing.ledger import Ledger
from campaigns.pacing.schedule import DaySchedule, cached_shape, day_bounds, day_schedule
from campaigns.snapshot import redis_client, redis_keys


def live_campaigns(now: datetime) -> list[Campaign]:
    line_items = LineItem.objects.filter(status=LineItemStatus.ACTIVE).prefetch_related(
        "placements"
    )
    return list(
        Campaign.objects.live(now)
        .select_related("advertiser")
        .prefetch_related(Prefetch("line_items", queryset=line_items.order_by("id")))
        .order_by("id")
    )


def ledger() -> Ledger:
    return Ledger(redis_client(), redis_keys())


def days_left(campaign: Campaign, schedule: DaySchedule) -> int | None:
    """Local days of the flight from today on, today included; None without an end."""
    if campaign.end_at is None:
        return None
    last = (campaign.end_at - timedelta(microseconds=1)).astimezone(ZoneInfo(schedule.zone))
    return max(1, (last.date() - schedule.start.date()).days + 1)


def _spread(remaining: Decimal, days: int | None, mode: str) -> Decimal:
    """Today's share of what is left of a flight total: all of it for ASAP or without an end
    date, an equal share of the days left otherwise."""
    remaining = max(Decimal(0), remaining)
    if days is None or mode == PacingMode.ASAP:
        return remaining
    return remaining / days


def spend_target(campaign: Campaign, spent_before_today: Decimal, days: int | None) -> Decimal:
    """Today's budget: the daily budget, within the lifetime budget and a spend goal."""
    target = campaign.daily_budget
    totals = [campaign.lifetime_budget]
    if campaign.goal_type == GoalType.SPEND:
        totals.append(campaign.goal_target)
    for total in totals:
        if total is not None:
            target = min(target, _spread(total - spent_before_today, days, campaign.pacing_mode))
    return max(Decimal(0), target)


def goal_target(campaign: Campaign, done_before_today: int, days: int | None) -> int | None:
    """Today's impressions or clicks for a goal campaign (None: no count goal)."""
    if campaign.goal_type not in (GoalType.IMPRESSIONS, GoalType.CLICKS):
        return None
    if campaign.goal_target is None:
        return None
    left = Decimal(campaign.goal_target) - done_before_today
    return int(_spread(left, days, campaign.pacing_mode).to_integral_value())


def line_item_target(
    li: LineItem, spent_before_today: Decimal, days: int | None, mode: str
) -> Decimal | None:
    """Today's budget of a line item with budgets of its own (None: it has none)."""
    target = li.daily_budget
    if li.lifetime_budget is not None:
        share = _spread(li.lifetime_budget - spent_before_today, days, mode)
        target = share if target is None else min(target, share)
    return target


def _shape_placements(campaign: Campaign) -> list[int]:
    """The placements a campaign can appear on, when every line item names its own."""
    placements: set[int] = set()
    for li in campaign.line_items.all():
        ids = [p.pk for p in li.placements.all()]
        if not ids:
            return []
        placements.update(ids)
    return sorted(placements)


def schedule_for(
    campaign: Campaign, now: datetime, shapes: dict[Any, tuple[float, ...]] | None = None
) -> DaySchedule:
    """The campaign's day around `now`; `shapes` remembers traffic shapes within one tick."""
    zone = campaign.advertiser.time_zone
    start, _ = day_bounds(now, zone)
    placements = tuple(_shape_placements(campaign))
    memo = {} if shapes is None else shapes
    key = (zone, start, placements)
    if key not in memo:
        memo[key] = cached_shape(redis_client(), redis_keys(), zone, start, placements)
    return day_schedule(now, zone, campaign.pacing_mode, memo[key])
