"""Budget utilisation of every campaign in one table: spend against the daily budget today
(in the campaign's organisation's day) and against the lifetime budget, from the rollups.

Spend is what ingestion has rolled up (seconds behind the pacing counters the campaign list
reads from Redis). Budgets and our line items' spend are both in the campaign's currency, so
nothing is converted; a row in another currency would be left out, never added.
"""

from collections import defaultdict
from datetime import datetime, time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import Sum

from campaigns.models import Campaign
from reporting.models import DemandDaily, DemandHourly
from reporting.reports.tables import money, percent


def _spend(rows: Any, ids: list[int]) -> dict[tuple[int, str], Decimal]:
    out: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
    for r in (
        rows.filter(campaign_id__in=ids)
        .values("campaign_id", "currency")
        .annotate(spend=Sum("spend"))
        .order_by()
    ):
        out[(r["campaign_id"], r["currency"])] += r["spend"] or Decimal(0)
    return out


def budget_utilisation(campaigns: list[Campaign], now: datetime) -> list[dict[str, Any]]:
    """One row per campaign given (a page of them): today's and the lifetime's spend and
    their share of the budgets. One query per time zone among them, plus two."""
    ids = [c.pk for c in campaigns]
    lifetime = _spend(DemandHourly.objects.all(), ids)
    for key, amount in _spend(DemandDaily.objects.all(), ids).items():
        lifetime[key] += amount
    today: dict[tuple[int, str], Decimal] = {}
    by_zone: dict[str, list[int]] = defaultdict(list)
    for c in campaigns:
        by_zone[c.advertiser.time_zone].append(c.pk)
    for zone_name, zone_ids in by_zone.items():
        zone = ZoneInfo(zone_name)
        midnight = datetime.combine(now.astimezone(zone).date(), time(0), tzinfo=zone)
        today.update(_spend(DemandHourly.objects.filter(hour__gte=midnight), zone_ids))
    rows = []
    for c in campaigns:
        spent_today = today.get((c.pk, c.currency), Decimal(0))
        spent = lifetime.get((c.pk, c.currency), Decimal(0))
        rows.append(
            {
                "campaign_id": c.pk,
                "campaign": c.name,
                "advertiser": c.advertiser.name,
                "status": c.status,
                "currency": c.currency,
                "daily_budget": c.daily_budget,
                "spend_today": money(spent_today),
                "today_utilisation": percent(spent_today, c.daily_budget or 0),
                "lifetime_budget": c.lifetime_budget,
                "spend_lifetime": money(spent),
                "lifetime_utilisation": percent(spent, c.lifetime_budget or 0),
            }
        )
    return rows
