"""The figures of `collect` in Prometheus' text format (prometheus-client's metric families).

Serving series carry a `process` label (host:pid): sum them in PromQL for the fleet. Every
metric named in `deploy/prometheus/alerts.yml` is produced here (a test checks).
"""

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

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
            counts, running, buckets = hist["buckets"], 0, []
            for bound, n in zip([*map(_bucket_label, bounds), "+Inf"], counts, strict=True):
                running += n
                buckets.append((bound, running))
            latency.add_metric([process, door], buckets, hist["sum"])
        values = data.get("gauges", {})
        for name, family in gauges.items():
            if name in values:
                family.add_metric([process], values[name])
        dropped.add_metric([process], values.get("sink_dropped_total", 0))
    yield from (requests, no_fill, latency, dropped, *gauges.values())

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


class _Collector(Collector):
    def __init__(self, figures: Figures) -> None:
        self.figures = figures

    def collect(self) -> Iterator[Metric]:
        return families(self.figures)


def render(figures: Figures | None = None) -> bytes:
    """The exposition text for one scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(figures if figures is not None else collect()))
    return generate_latest(registry)
