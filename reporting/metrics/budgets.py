"""Per-campaign budget figures for `/metrics`: spend today and lifetime against the budgets,
the pacing rate, whether (and at what local hour) the campaign ran out of budget today, and
the reconciliation's drift.

Cardinality is bounded: live campaigns only (`Campaign.objects.live`), at most
METRICS_CAMPAIGN_LIMIT of them by id; `live` says how many there were. One database query
for the page and one for the count, one Redis pipeline for all their counters.
"""

import json
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings

from campaigns.models import Campaign
from campaigns.pacing.ledger import parse_counters, to_money
from campaigns.pacing.schedule import day_bounds
from campaigns.snapshot import redis_client, redis_keys

# The alert on a budget spent too early: out of budget before this local hour.
EARLY_HOUR = 18


@dataclass
class CampaignFigures:
    id: int
    name: str
    currency: str
    pacing_mode: str
    time_zone: str
    spend_today: Decimal
    lifetime_spend: Decimal
    daily_budget: Decimal | None
    lifetime_budget: Decimal | None
    # From the controller's last tick today (None before it): the day's paced target and
    # where spend should be by now.
    budget_today: Decimal | None
    schedule_now: Decimal | None
    pacing_rate: float
    exhausted: bool
    exhausted_local_hour: float | None  # hours since local midnight when it ran out
    reconcile_drift: Decimal | None

    @property
    def exhausted_early(self) -> bool:
        hour = self.exhausted_local_hour
        return self.exhausted and hour is not None and hour < EARLY_HOUR


@dataclass
class BudgetFigures:
    live: int = 0
    campaigns: list[CampaignFigures] = field(default_factory=list)
    reconciled_at: float = 0.0
    repaired: dict[str, Decimal] = field(default_factory=dict)  # currency -> spend repaired


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def collect_budgets(now: datetime) -> BudgetFigures:
    """The live campaigns' budget figures now (see the module docstring)."""
    live = Campaign.objects.live(now)
    page = list(live.select_related("advertiser").order_by("id")[: settings.METRICS_CAMPAIGN_LIMIT])
    out = BudgetFigures(live=len(page))
    if len(page) == settings.METRICS_CAMPAIGN_LIMIT:
        out.live = live.count()
    client, keys = redis_client(), redis_keys()
    days = {}
    for c in page:
        start, _ = day_bounds(now, c.advertiser.time_zone)
        days[c.pk] = (start, start.strftime("%Y%m%d"))
    pipe = client.pipeline(transaction=False)
    for c in page:
        pipe.hgetall(keys.spend(days[c.pk][1], c.pk))
        pipe.hgetall(keys.lifetime_spend(c.pk))
    distinct_days = sorted({day for _, day in days.values()})
    for day in distinct_days:
        pipe.smembers(keys.exhausted(day))
    pipe.hmget(keys.pacing_state, [f"v{c.pk}" for c in page] or ["-"])
    pipe.hgetall(keys.reconcile_metrics)
    replies: list[Any] = pipe.execute()
    counters, rest = replies[: 2 * len(page)], replies[2 * len(page) :]
    exhausted = {
        day: {_text(m) for m in members}
        for day, members in zip(distinct_days, rest[: len(distinct_days)], strict=True)
    }
    states, reconcile = rest[len(distinct_days)], rest[len(distinct_days) + 1]
    reconcile = {_text(k): _text(v) for k, v in reconcile.items()}
    out.reconciled_at = float(reconcile.get("at", 0.0))
    out.repaired = {
        name[2:]: to_money(int(v)) for name, v in reconcile.items() if name.startswith("r:")
    }
    for i, c in enumerate(page):
        start, day = days[c.pk]
        today, life = parse_counters(counters[2 * i]), parse_counters(counters[2 * i + 1])
        raw_state = states[i] if i < len(states) else None
        state = json.loads(raw_state) if raw_state else {}
        fresh = state.get("day") == day
        spent = str(c.pk) in exhausted[day]
        hour = None
        if spent and today.exhausted_at is not None:
            local = datetime.fromtimestamp(today.exhausted_at, ZoneInfo(c.advertiser.time_zone))
            hour = (local - start).total_seconds() / 3600
        drift = reconcile.get(f"d:{c.pk}")
        out.campaigns.append(
            CampaignFigures(
                id=c.pk,
                name=c.name,
                currency=c.currency,
                pacing_mode=c.pacing_mode,
                time_zone=c.advertiser.time_zone,
                spend_today=to_money(today.spend),
                lifetime_spend=to_money(life.spend),
                daily_budget=c.daily_budget,
                lifetime_budget=c.lifetime_budget,
                budget_today=to_money(state["target"]) if fresh else None,
                schedule_now=to_money(state["schedule"]) if fresh else None,
                pacing_rate=float(state.get("rate", 1.0)) if fresh else 1.0,
                exhausted=spent,
                exhausted_local_hour=hour,
                reconcile_drift=to_money(int(drift)) if drift is not None else None,
            )
        )
    return out
