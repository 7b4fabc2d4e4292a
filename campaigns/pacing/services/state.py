"""What ad ops and advertisers see: a campaign's pacing state and its spend against the
schedule (API, admin, reports)."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import Sum

from campaigns.models import Campaign
from campaigns.pacing.ledger import to_money
from campaigns.pacing.services.targets import days_left, ledger, schedule_for, spend_target
from reporting.models import HourlyRollup


def campaign_pacing(campaign: Campaign, now: datetime) -> dict[str, Any]:
    """A campaign's pacing state now: spend today against its schedule, the controller's
    pass-through rate and its prediction for the end of the day, per line item too."""
    led = ledger()
    sched = schedule_for(campaign, now)
    counters = led.read([(campaign.pk, sched.day), (campaign.pk, "life")])
    today, life = counters[(campaign.pk, sched.day)], counters[(campaign.pk, "life")]
    line_item_ids = [li.pk for li in campaign.line_items.all()]
    view = led.read_states([f"v{campaign.pk}"]).get(f"v{campaign.pk}") or {}
    rates, multipliers = led.read_rates(line_item_ids)
    exhausted = led.exhausted(sched.day)
    fresh = view.get("day") == sched.day
    days = days_left(campaign, sched)
    target = spend_target(campaign, to_money(life.spend - today.spend), days)
    fraction = sched.fraction(now)
    schedule_now = target * Decimal(repr(fraction))
    spend = to_money(today.spend)
    predicted = view.get("predicted") if fresh else None
    line_items = []
    for li in campaign.line_items.all():
        line_items.append(
            {
                "id": li.pk,
                "name": li.name,
                "status": li.status,
                "spend_today": _money(to_money(today.line_spend.get(li.pk, 0))),
                "pending_spend_today": _money(to_money(today.line_pending(li.pk))),
                "wins_today": today.line_impressions.get(li.pk, 0),
                # The old name of wins_today, kept so existing integrations keep working.
                "impressions_today": today.line_impressions.get(li.pk, 0),
                "daily_budget": _money(li.daily_budget),
                "pass_through": round(rates.get(li.pk, 1.0), 4),
                "bid_strategy": li.bid_strategy,
                "bid_multiplier": round(multipliers.get(li.pk, 1.0), 4),
                "exhausted": f"li:{li.pk}" in exhausted,
            }
        )
    return {
        "campaign": campaign.pk,
        "day": sched.start.date().isoformat(),
        "time_zone": sched.zone,
        "pacing_mode": campaign.pacing_mode,
        "currency": campaign.currency,
        "daily_budget": _money(campaign.daily_budget),
        "budget_today": _money(target),
        "lifetime_budget": _money(campaign.lifetime_budget),
        "lifetime_spend": _money(to_money(life.spend)),
        "spend_today": _money(spend),
        # Wins charged but not rendered yet: part of spend_today, not (yet) billed.
        "pending_spend_today": _money(to_money(today.pending_total)),
        "wins_today": today.impressions,
        "impressions_today": today.impressions,  # the old name of wins_today
        "clicks_today": today.clicks,
        "schedule_now": _money(schedule_now.quantize(Decimal("0.0001"))),
        "schedule_fraction": round(fraction, 4),
        "pacing_error": round(float(spend / schedule_now) - 1, 4) if schedule_now else None,
        "pass_through": round(view["rate"], 4) if fresh else 1.0,
        "predicted_end_of_day_spend": (
            _money(to_money(predicted)) if predicted is not None else None
        ),
        "exhausted": str(campaign.pk) in exhausted,
        "goal_type": campaign.goal_type,
        "goal_target": _money(campaign.goal_target),
        "updated_at": (
            datetime.fromtimestamp(view["at"], ZoneInfo(sched.zone)).isoformat() if fresh else None
        ),
        "line_items": line_items,
    }


def _money(amount: Decimal | None) -> str | None:
    return None if amount is None else f"{amount.normalize():f}"


@dataclass(frozen=True)
class ChartPoint:
    hour: int
    spend: Decimal
    schedule: Decimal


def spend_against_schedule(campaign: Campaign, now: datetime) -> dict[str, Any]:
    """Today's cumulative spend per local hour (the rollups, then Redis for the hour under
    way) against the schedule's cumulative spend: the data of the report's chart."""
    led = ledger()
    sched = schedule_for(campaign, now)
    counters = led.read([(campaign.pk, sched.day), (campaign.pk, "life")])
    today, life = counters[(campaign.pk, sched.day)], counters[(campaign.pk, "life")]
    target = spend_target(campaign, to_money(life.spend - today.spend), days_left(campaign, sched))
    hourly: dict[int, Decimal] = defaultdict(Decimal)
    rows = (
        HourlyRollup.objects.filter(
            campaign_id=campaign.pk, hour__gte=sched.start, hour__lt=sched.end
        )
        .values("hour")
        .annotate(s=Sum("spend"))
        .order_by()
    )
    tz = ZoneInfo(sched.zone)
    for row in rows:
        hourly[row["hour"].astimezone(tz).hour] += row["s"] or Decimal(0)
    elapsed = min(24, int((now - sched.start).total_seconds() // 3600) + 1)
    points, spent = [], Decimal(0)
    for hour in range(24):
        spent += hourly.get(hour, Decimal(0))
        end = sched.hour_start(hour + 1)
        points.append(ChartPoint(hour + 1, spent, target * Decimal(repr(sched.fraction(end)))))
    return {
        "schedule": sched,
        "target": target,
        "points": points,
        "elapsed_hours": elapsed,
        "live_spend": to_money(today.spend),
        "live_schedule": target * Decimal(repr(sched.fraction(now))),
    }
