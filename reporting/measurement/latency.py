"""Buyer response time p50/p95/p99 per buyer (and hour) over any period, from the per-hour
bucket counts merged by summing (`serving.latency`): percentiles of all the answers, not a
mean of hourly figures. A percentile that falls among the calls that timed out is reported
as a timeout. Buyers are ad ops' business: staff only."""

import math
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Sum

from reporting.measurement.sources import split_period
from reporting.models import BuyerLatencyDaily, BuyerLatencyHourly
from serving.latency import TIMEOUT, quantile
from serving.models import Buyer

QUANTILES = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))


def _ms(value: float | None) -> str | None:
    """A percentile as the API and page show it: milliseconds to 0.1, or "timeout"."""
    if value is None:
        return None
    if math.isinf(value):
        return "timeout"
    return f"{value:.1f}"


def buyer_latency(
    start: datetime, end: datetime, by_hour: bool, now: datetime
) -> list[dict[str, Any]]:
    """Per buyer (and UTC hour when `by_hour`; days no longer kept hourly at their
    midnight) over [start, end): calls, timeouts and the percentiles. Two grouped queries."""
    split = split_period(start, end, now, settings.DEMAND_HOURLY_DAYS, prefer_hours=by_hour)
    histograms: dict[tuple[int, datetime | None], dict[int, int]] = defaultdict(
        lambda: defaultdict(int)
    )
    for qs, time_field in (
        (split.hours(BuyerLatencyHourly.objects.all()), "hour"),
        (split.days(BuyerLatencyDaily.objects.all()), "day"),
    ):
        columns = ["buyer_id", "bucket", *([time_field] if by_hour else [])]
        for r in qs.values(*columns).annotate(n=Sum("count")).order_by():
            at = r[time_field] if by_hour else None
            histograms[(r["buyer_id"], at)][r["bucket"]] += r["n"]
    names = dict(Buyer.objects.filter(pk__in={b for b, _ in histograms}).values_list("pk", "name"))
    rows = []
    for (buyer_id, at), counts in sorted(
        histograms.items(), key=lambda kv: (kv[0][0], kv[0][1] or start)
    ):
        calls = sum(counts.values())
        timeouts = counts.get(TIMEOUT, 0)
        row: dict[str, Any] = {
            "buyer_id": buyer_id,
            "buyer": names.get(buyer_id, f"#{buyer_id}"),
            "hour": at.astimezone(UTC).isoformat() if at is not None else None,
            "calls": calls,
            "answers": calls - timeouts,
            "timeouts": timeouts,
            "timeout_rate": (Decimal(timeouts * 100) / calls).quantize(Decimal("0.01"))
            if calls
            else None,
        }
        for name, q in QUANTILES:
            row[f"{name}_ms"] = _ms(quantile(counts, q))
        rows.append(row)
    return rows
