"""Read-side queries over the hourly rollups, shared by the report page and the API."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Sum

from campaigns.models import Campaign, LineItem
from reporting.models import ConsentHourly, HourlyRollupQuerySet


@dataclass(frozen=True)
class Bar:
    hour: datetime
    value: int
    x: int
    y: int
    height: int


def totals(rows: HourlyRollupQuerySet) -> dict[str, Any]:
    agg = rows.aggregate(
        requests=Sum("requests"),
        impressions=Sum("impressions"),
        clicks=Sum("clicks"),
        spend=Sum("spend"),
    )
    return {
        "requests": agg["requests"] or 0,
        "impressions": agg["impressions"] or 0,
        "clicks": agg["clicks"] or 0,
        "spend": agg["spend"] or Decimal("0"),
    }


def by_line_item(rows: HourlyRollupQuerySet) -> list[dict[str, Any]]:
    """Totals per line item, with names; unfilled requests under line item 0."""
    grouped = list(
        rows.values("line_item_id", "campaign_id")
        .annotate(
            requests=Sum("requests"),
            impressions=Sum("impressions"),
            clicks=Sum("clicks"),
            spend=Sum("spend"),
        )
        .order_by("-impressions", "line_item_id")
    )
    li_names = dict(
        LineItem.objects.filter(pk__in=[g["line_item_id"] for g in grouped]).values_list(
            "pk", "name"
        )
    )
    campaign_names = dict(
        Campaign.objects.filter(pk__in=[g["campaign_id"] for g in grouped]).values_list(
            "pk", "name"
        )
    )
    out: list[dict[str, Any]] = []
    for g in grouped:
        fallback = f"#{g['line_item_id']}" if g["line_item_id"] else "(unfilled requests)"
        out.append(
            {
                **g,
                "line_item": li_names.get(g["line_item_id"], fallback),
                "campaign": campaign_names.get(g["campaign_id"], ""),
                "ctr": (g["clicks"] / g["impressions"] * 100) if g["impressions"] else 0.0,
            }
        )
    return out


def hourly_bars(
    rows: HourlyRollupQuerySet, until: datetime, hours: int = 24, height: int = 120
) -> list[Bar]:
    """Impressions per hour for the last `hours` hours, scaled for an SVG bar chart."""
    end = until.replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(hours=hours - 1)
    per_hour = dict(
        rows.filter(hour__gte=start, hour__lte=end)
        .values("hour")
        .annotate(n=Sum("impressions"))
        .values_list("hour", "n")
    )
    peak = max(per_hour.values(), default=0) or 1
    bars = []
    for i in range(hours):
        hour = start + timedelta(hours=i)
        value = per_hour.get(hour, 0) or 0
        h = round(value / peak * height)
        bars.append(Bar(hour=hour, value=value, x=i * 20, y=height - h, height=h))
    return bars


def consent_coverage(since: datetime) -> dict[str, Any]:
    """Ad requests since `since` by consent outcome: valid-signal and personalised shares,
    and blocked or contextual-only requests by reason."""
    rows = list(
        ConsentHourly.objects.filter(hour__gte=since)
        .values("outcome", "reason", "valid_signal")
        .annotate(n=Sum("requests"))
    )
    total = sum(r["n"] for r in rows)

    def share(n: int) -> float:
        return n / total * 100 if total else 0.0

    by_reason: dict[tuple[str, str], int] = {}
    for r in rows:
        if r["outcome"] != "personalised":
            key = (r["outcome"], r["reason"] or "-")
            by_reason[key] = by_reason.get(key, 0) + r["n"]
    return {
        "requests": total,
        "valid_signal": share(sum(r["n"] for r in rows if r["valid_signal"])),
        "personalised": share(sum(r["n"] for r in rows if r["outcome"] == "personalised")),
        "by_reason": [
            {"outcome": o, "reason": reason, "requests": n, "share": share(n)}
            for (o, reason), n in sorted(by_reason.items(), key=lambda kv: -kv[1])
        ],
    }
