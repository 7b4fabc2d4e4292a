"""Operational metrics of a serving process: plain in-process counters, published to Redis.

The hot path only adds to dicts and lists (`observe`: about a microsecond a request, see
`bench/metrics_cost.py`); nothing in it waits. Every PUBLISH_SECONDS each process writes its
figures as one JSON value under `RedisKeys.serving_metrics(process)`, expiring after
EXPIRE_SECONDS, and the Prometheus endpoint of the Django app (`reporting.metrics`) renders
every live process's figures with a `process` label: granian's workers, and any number of
serving hosts sharing the Redis, are scraped through one URL, and a restarted worker is a
new series (Prometheus' `rate()` handles its reset).
"""

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgspec

log = logging.getLogger(__name__)

PUBLISH_SECONDS = 5.0
EXPIRE_SECONDS = 30
# Upper bounds of the decision-latency histogram, in seconds (Prometheus' `le`); the last
# bucket (+Inf) is implicit.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)

# The door of a path: what the requests/latency series are labelled with.
_EXACT = {
    "/v1/ad": "v1",
    "/openrtb2/auction": "openrtb",
    "/v1/vast": "vast",
    "/v1/health": "health",
    "/v1/sync": "sync",
    "/v1/sync/return": "sync",
}
_PREFIXES = (
    ("/v1/imp/", "impression"),
    ("/v1/click/", "click"),
    ("/v1/ev/", "event"),
    ("/v1/err/", "error"),
)
_NO_FILL_HEADERS = (b"x-no-fill-reason", b"x-no-bid-reason")


def door_of(path: str) -> str:
    door = _EXACT.get(path)
    if door is not None:
        return door
    for prefix, name in _PREFIXES:
        if path.startswith(prefix):
            return name
    return "other"


def process_name() -> str:
    """host:pid, unique among the processes sharing a Redis."""
    return f"{socket.gethostname()}:{os.getpid()}"


class ServingMetrics:
    """Counters of one serving process since it started."""

    def __init__(self) -> None:
        self.started_at = time.time()
        self.requests: Counter[tuple[str, int]] = Counter()
        self.no_fill: Counter[tuple[str, str]] = Counter()
        # door -> counts per bucket (the last is +Inf), and the sum of seconds.
        self.latency: dict[str, list[int]] = {}
        self.latency_sum: dict[str, float] = {}

    def observe(self, door: str, status: int, seconds: float, headers: Any = None) -> None:
        """One answered request: its door, status and time in the app."""
        self.requests[door, status] += 1
        buckets = self.latency.get(door)
        if buckets is None:
            buckets = self.latency[door] = [0] * (len(LATENCY_BUCKETS) + 1)
        buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum[door] = self.latency_sum.get(door, 0.0) + seconds
        if status == 204 and headers:
            for name, value in headers:
                if name in _NO_FILL_HEADERS:
                    self.no_fill[door, value.decode("latin-1")] += 1
                    break

    def watch(self, door: str, send: Callable[[Any], Any]) -> tuple[Callable[[Any], Any], Any]:
        """A `send` that remembers the response's status and headers, and the record it
        fills: observe them with `finish` once the app returns."""
        seen: list[Any] = [500, None]

        async def watched(message: Any) -> None:
            if message["type"] == "http.response.start":
                seen[0] = message["status"]
                seen[1] = message.get("headers")
            await send(message)

        return watched, seen

    def figures(self, gauges: dict[str, float]) -> dict[str, Any]:
        """What is published: counters so far and the gauges of this moment."""
        return {
            "started_at": self.started_at,
            "published_at": time.time(),
            "requests": [[d, s, n] for (d, s), n in self.requests.items()],
            "no_fill": [[d, r, n] for (d, r), n in self.no_fill.items()],
            "latency": {
                d: {"buckets": b, "sum": self.latency_sum.get(d, 0.0)}
                for d, b in self.latency.items()
            },
            "buckets": list(LATENCY_BUCKETS),
            "gauges": gauges,
        }


class AccessLog:
    """A sampled access log (logger `serving.access`, INFO): one line for a `sample` share of
    requests, with door, status, milliseconds, request id and decision id as fields (JSON
    keys under LOG_FORMAT=json). Not sampled: a cheap random draw and nothing else."""

    def __init__(self, sample: float) -> None:
        self.sample = min(max(sample, 0.0), 1.0)
        self._random = random.Random()  # noqa: S311 - sampling, not a secret
        self.log = logging.getLogger("serving.access")

    def draw(self) -> bool:
        return self._random.random() < self.sample

    def write(
        self, scope: Any, door: str, status: int, seconds: float, request_id: str, decision: str
    ) -> None:
        fields = {
            "door": door,
            "method": scope.get("method", ""),
            "path": scope.get("path", "")[:200],
            "status": status,
            "ms": round(seconds * 1000, 3),
            "request_id": request_id,
            "decision_id": decision,
        }
        self.log.info(
            "%s %s %s %.1f ms", fields["method"], fields["path"], status, fields["ms"],
            extra=fields,
        )  # fmt: skip


def gauges_of(store: Any, sink: Any, outage: Any) -> dict[str, float]:
    """Snapshot version and age, the event sink's queue and refusals, Redis outage state."""
    now = time.time()
    age = -1.0
    if store.built_at:
        with contextlib.suppress(ValueError):
            age = now - datetime.fromisoformat(store.built_at).timestamp()
    return {
        "snapshot_version": float(store.version),
        "snapshot_age_seconds": age,
        "snapshot_loaded_seconds_ago": now - store.loaded_at if store.loaded_at else -1.0,
        "sink_pending": float(sink.pending),
        "sink_dropped_total": float(sink.dropped),
        "sink_accepting": 1.0 if sink.accepting else 0.0,
        "redis_outage": 1.0 if outage.down else 0.0,
    }


async def publish_once(
    metrics: ServingMetrics, redis: Any, key: str, gauges: Callable[[], dict[str, float]]
) -> None:
    """Write this process's figures now (one SET with expiry)."""
    await redis.set(key, msgspec.json.encode(metrics.figures(gauges())), ex=EXPIRE_SECONDS)


async def publish_forever(
    metrics: ServingMetrics,
    redis: Any,
    key: str,
    gauges: Callable[[], dict[str, float]],
    every: float = PUBLISH_SECONDS,
) -> None:
    """Write this process's figures every `every` seconds until cancelled (a failed write is
    retried at the next turn: these are operational figures, not money)."""
    while True:
        try:
            await publish_once(metrics, redis, key, gauges)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Redis down: the outage is reported by serving itself
            log.debug("serving metrics not published: %s", exc)
        await asyncio.sleep(every)
