"""The figures of `collect` in Prometheus' text format (prometheus-client's metric families).

Serving series carry a `process` label (host:pid): sum them in PromQL for the fleet. Every
metric named in `deploy/prometheus/alerts.yml` is produced here (a test checks).
"""

from collections.abc import Iterator
from decimal import Decimal

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from reporting.metrics.budgets import EARLY_HOUR
from reporting.metrics.collect import PACING_TASK, Figures, collect

NS = "adsplatform"
SERVING_GAUGES = {
    "snapshot_version": "Snapshot version the process serves from.",
    "snapshot_age_seconds": "Seconds since the snapshot in use was built (-1: none).",
    "snapshot_loaded_seconds_ago": "Seconds since this process loaded its snapshot.",
    "sink_pending": "Event-sink operations waiting for a Redis batch.",
    "sink_accepting": "1 when the event sink accepts writes (paid demand is served).",
    "redis_outage": "1 while the process sees Redis unavailable.",
}


def _bucket_label(bound: float) -> str:
    return f"{bound:g}"


def _cumulative(bounds: list[float], counts: list[int]) -> list[tuple[str, float]]:
    """Published counts per bucket as Prometheus' cumulative (le, count) pairs."""
    running, buckets = 0.0, list[tuple[str, float]]()
    for bound, n in zip([*map(_bucket_label, bounds), "+Inf"], counts, strict=True):
        running += n
        buckets.append((bound, running))
    return buckets


def families(fig: Figures) -> Iterator[Metric]:
    requests = CounterMetricFamily(
        f"{NS}_serving_requests", "Serving requests by door and status.",
        labels=["process", "door", "status"],
    )  # fmt: skip
    no_fill = CounterMetricFamily(
        f"{NS}_serving_no_fill", "Requests answered 204, by door and reason.",
        labels=["process", "door", "reason"],
    )  # fmt: skip
    latency = HistogramMetricFamily(
        f"{NS}_serving_request_duration_seconds", "Time in the serving app per request.",
        labels=["process", "door"],
    )  # fmt: skip
    dropped = CounterMetricFamily(
        f"{NS}_serving_sink_dropped", "Event-sink operations refused (queue full).",
        labels=["process"],
    )  # fmt: skip
    flush = HistogramMetricFamily(
        f"{NS}_serving_redis_flush_duration_seconds",
        "Round trip of each event-sink batch to Redis (connecting included).",
        labels=["process"],
    )
    flush_failures = CounterMetricFamily(
        f"{NS}_serving_redis_flush_failures", "Event-sink batches that did not reach Redis.",
        labels=["process"],
    )  # fmt: skip
    buyer_latency = HistogramMetricFamily(
        f"{NS}_buyer_response_seconds",
        "Time to an external buyer's answer, per process (timeouts are not in it).",
        labels=["process", "buyer"],
    )
    circuit = GaugeMetricFamily(
        f"{NS}_buyer_circuit_state",
        "A buyer's circuit breaker in the process: 0 closed, 1 open, 2 half-open.",
        labels=["process", "buyer"],
    )
    gauges = {
        name: GaugeMetricFamily(f"{NS}_serving_{name}", text, labels=["process"])
        for name, text in SERVING_GAUGES.items()
    }
    for process, data in sorted(fig.serving.items()):
        for door, status, n in data.get("requests", []):
            requests.add_metric([process, door, str(status)], n)
        for door, reason, n in data.get("no_fill", []):
            no_fill.add_metric([process, door, reason], n)
        bounds = data.get("buckets", [])
        for door, hist in sorted(data.get("latency", {}).items()):
            latency.add_metric([process, door], _cumulative(bounds, hist["buckets"]), hist["sum"])
        if "flush" in data:
            hist = data["flush"]
            flush.add_metric([process], _cumulative(bounds, hist["buckets"]), hist["sum"])
            flush_failures.add_metric([process], hist["failures"])
        buyer_bounds = data.get("buyer_buckets", [])
        for buyer, hist in sorted(data.get("buyer_latency", {}).items()):
            buckets = _cumulative(buyer_bounds, hist["buckets"])
            buyer_latency.add_metric([process, buyer], buckets, hist["sum"])
        for buyer, state in sorted(data.get("buyer_circuit", {}).items()):
            circuit.add_metric([process, buyer], state)
        values = data.get("gauges", {})
        for name, family in gauges.items():
            if name in values:
                family.add_metric([process], values[name])
        dropped.add_metric([process], values.get("sink_dropped_total", 0))
    yield from (requests, no_fill, latency, dropped, flush, flush_failures, *gauges.values())
    yield from (buyer_latency, circuit)

    buyers = CounterMetricFamily(
        f"{NS}_buyer_outcomes", "External buyers' calls today (UTC) by outcome, fleet-wide.",
        labels=["buyer", "outcome"],
    )  # fmt: skip
    for (buyer, outcome), n in sorted(fig.buyers.items()):
        buyers.add_metric([buyer, outcome], n)
    yield buyers

    backlog = fig.backlog
    for name, text in (
        ("length", "Entries in the raw event stream."),
        ("pending", "Entries delivered to ingestion and not yet acknowledged."),
        ("lag", "Entries not yet rolled up."),
    ):
        gauge = GaugeMetricFamily(f"{NS}_ingest_stream_{name}", text)
        gauge.add_metric([], backlog.get(name, 0.0))
        yield gauge
    checked = GaugeMetricFamily(
        f"{NS}_ingest_checked_seconds_ago", "Seconds since ingestion last measured the stream."
    )
    at = backlog.get("checked_at", 0.0)
    checked.add_metric([], fig.now - at if at else -1.0)
    yield checked
    lag_seconds = GaugeMetricFamily(
        f"{NS}_ingest_lag_seconds", "Age of the oldest event not rolled up (0: none)."
    )
    oldest = fig.ingest_oldest_ms
    lag_seconds.add_metric([], max(0.0, fig.now - oldest / 1000) if oldest else 0.0)
    yield lag_seconds

    runs = CounterMetricFamily(f"{NS}_task_runs", "Celery task runs.", labels=["task"])
    failures = CounterMetricFamily(f"{NS}_task_failures", "Celery task failures.", labels=["task"])
    seconds = CounterMetricFamily(
        f"{NS}_task_seconds", "Celery task runtime, summed.", labels=["task"]
    )
    since = GaugeMetricFamily(
        f"{NS}_task_last_end_seconds_ago", "Seconds since the task last finished.",
        labels=["task"],
    )  # fmt: skip
    for task, t in sorted(fig.tasks.items()):
        runs.add_metric([task], t.runs)
        failures.add_metric([task], t.failures)
        seconds.add_metric([task], t.seconds)
        since.add_metric([task], fig.now - t.last_end if t.last_end else -1.0)
    yield from (runs, failures, seconds, since)

    pacing = GaugeMetricFamily(
        f"{NS}_pacing_tick_seconds_ago", "Seconds since the pacing controller last ran (-1: never)."
    )
    tick = fig.tasks.get(PACING_TASK)
    pacing.add_metric([], fig.now - tick.last_end if tick and tick.last_end else -1.0)
    yield pacing

    published = GaugeMetricFamily(f"{NS}_snapshot_published_version", "Published snapshot.")
    published.add_metric([], fig.snapshot_version)
    yield published
    yield from _budget_families(fig)


# Per campaign, labelled `campaign` (id) and `currency`: amounts in the campaign's currency,
# never to be summed across currencies. A budget that is not set has no sample.
CAMPAIGN_GAUGES = {
    "spend_today": "Spend today (local day), wins not yet rendered included.",
    "daily_budget": "The campaign's daily budget.",
    "budget_today": "Today's paced target (daily budget, or lifetime left over days left).",
    "spend_schedule": "Where today's spend should be by now, at the controller's last tick.",
    "lifetime_spend": "Spend over the flight so far.",
    "lifetime_budget": "The campaign's lifetime budget.",
    "pacing_rate": "The controller's pass-through rate (1: every opportunity bid on).",
    "budget_exhausted": "1 while the campaign is out of budget today.",
    "exhausted_local_hour": "Local hour (fractional) it ran out of budget today; -1: it has not.",
    "exhausted_before_local_18": f"1 when it ran out of budget today before {EARLY_HOUR}:00 local.",
    "reconcile_drift": "Rendered spend today in Redis less the rollups', at the last reconcile.",
}


def _budget_families(fig: Figures) -> Iterator[Metric]:
    b = fig.budgets
    live = GaugeMetricFamily(f"{NS}_campaigns_live", "Live campaigns (active, in flight).")
    live.add_metric([], b.live)
    shown = GaugeMetricFamily(
        f"{NS}_campaigns_exported", "Live campaigns with budget series (METRICS_CAMPAIGN_LIMIT)."
    )
    shown.add_metric([], len(b.campaigns))
    yield from (live, shown)
    info = GaugeMetricFamily(
        f"{NS}_campaign_info", "A live campaign's name, currency, pacing mode and zone (1).",
        labels=["campaign", "name", "currency", "pacing_mode", "time_zone"],
    )  # fmt: skip
    gauges = {
        name: GaugeMetricFamily(f"{NS}_campaign_{name}", text, labels=["campaign", "currency"])
        for name, text in CAMPAIGN_GAUGES.items()
    }
    for c in b.campaigns:
        labels = [str(c.id), c.currency]
        info.add_metric([str(c.id), c.name, c.currency, c.pacing_mode, c.time_zone], 1)
        hour = c.exhausted_local_hour if c.exhausted and c.exhausted_local_hour is not None else -1
        values: dict[str, Decimal | float | None] = {
            "spend_today": c.spend_today,
            "daily_budget": c.daily_budget,
            "budget_today": c.budget_today,
            "spend_schedule": c.schedule_now,
            "lifetime_spend": c.lifetime_spend,
            "lifetime_budget": c.lifetime_budget,
            "pacing_rate": c.pacing_rate,
            "budget_exhausted": 1.0 if c.exhausted else 0.0,
            "exhausted_local_hour": hour,
            "exhausted_before_local_18": 1.0 if c.exhausted_early else 0.0,
            "reconcile_drift": c.reconcile_drift,
        }
        for name, value in values.items():
            if value is not None:
                gauges[name].add_metric(labels, float(value))
    yield info
    yield from gauges.values()
    repaired = CounterMetricFamily(
        f"{NS}_reconcile_repaired", "Spend the reconciliation added to Redis from the rollups.",
        labels=["currency"],
    )  # fmt: skip
    for currency, amount in sorted(b.repaired.items()):
        repaired.add_metric([currency], float(amount))
    since = GaugeMetricFamily(
        f"{NS}_reconcile_seconds_ago", "Seconds since the spend reconciliation ran (-1: never)."
    )
    since.add_metric([], fig.now - b.reconciled_at if b.reconciled_at else -1.0)
    yield from (repaired, since)


class _Collector(Collector):
    def __init__(self, figures: Figures) -> None:
        self.figures = figures

    def collect(self) -> Iterator[Metric]:
        return families(self.figures)


def render(figures: Figures | None = None) -> bytes:
    """The exposition text for one scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(figures if figures is not None else collect(budgets=True)))
    return generate_latest(registry)
