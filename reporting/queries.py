"""Read-side queries over the hourly rollups, shared by the report page and the API."""

from datetime import datetime
from typing import Any

from django.db.models import Sum

from campaigns.models import LineItem
from reporting.models import ConsentHourly, DiagnosticQuerySet


def consent_coverage(since: datetime, until: datetime | None = None) -> dict[str, Any]:
    """Ad requests from `since` (to `until`) by consent outcome: valid-signal and
    personalised shares, and blocked or contextual-only requests by reason."""
    hours = ConsentHourly.objects.filter(hour__gte=since)
    if until is not None:
        hours = hours.filter(hour__lt=until)
    rows = list(hours.values("outcome", "reason", "valid_signal").annotate(n=Sum("requests")))
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


# What the reasons mean to an advertiser (serving.targeting and serving.engine name them).
REASON_LABELS = {
    "outbid": "Outbid by a higher bid",
    "below_floor": "Bid below the floor",
    "budget_exhausted": "Daily budget spent",
    "pacing": "Held back by pacing",
    "frequency_cap": "Frequency cap reached",
    "frequency_cap_without_id": "Frequency-capped, user id not allowed",
    "segments_without_consent": "Audience targeting, no consent to personalise",
    "creative_blocked": "Creatives blocked by the publisher",
    "daypart": "Outside its dayparts",
    "deal_not_offered": "Its deal was not offered",
    "private_auction": "Private auction, no deal",
    "coppa_not_child_safe": "Child-directed traffic, not child-safe",
    "won_other_slot": "Already won another slot of the request",
    "not_started": "Flight not started",
    "ended": "Flight ended",
}


def delivery_diagnostics(rows: DiagnosticQuerySet, limit: int = 20) -> list[dict[str, Any]]:
    """Per line item (most turned away first), its reasons with counts and shares."""
    grouped = list(
        rows.values("line_item_id", "reason").annotate(count=Sum("count")).order_by("line_item_id")
    )
    by_li: dict[int, list[dict[str, Any]]] = {}
    for g in grouped:
        by_li.setdefault(g["line_item_id"], []).append(dict(g))
    names = dict(LineItem.objects.filter(pk__in=by_li).values_list("pk", "name"))
    out = []
    for li_id, reasons in by_li.items():
        total = sum(r["count"] for r in reasons)
        out.append(
            {
                "line_item_id": li_id,
                "line_item": names.get(li_id, f"#{li_id}"),
                "total": total,
                "reasons": [
                    {
                        "reason": r["reason"],
                        "label": REASON_LABELS.get(r["reason"], r["reason"].replace("_", " ")),
                        "count": r["count"],
                        "share": r["count"] / total * 100,
                    }
                    for r in sorted(reasons, key=lambda r: -r["count"])
                ],
            }
        )
    out.sort(key=lambda row: -row["total"])
    return out[:limit]
