"""Operational metrics of a serving process: plain in-process counters, published to Redis.

The hot path only adds to dicts and lists (`observe`: about a microsecond a request, measured
with `bench/profile_serving.py`); nothing in it waits. A buyer's call and an event-sink batch
add to a `Histogram` the same way (`serving.buyers`, `serving.events`). Every PUBLISH_SECONDS
each process writes its figures as one JSON value under `RedisKeys.serving_metrics(process)`,
expiring after EXPIRE_SECONDS, and the Prometheus endpoint of the Django app
(`reporting.metrics`) renders every live process's figures with a `process` label: granian's
workers, and any number of serving hosts sharing the Redis, are scraped through one URL, and
a restarted worker is a new series (Prometheus' `rate()` handles its reset).
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
# bucket (+Inf) is implicit. The Redis batches' round trips use the same bounds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
# An external buyer's answer, in seconds: its timeout is 50 to 300 ms in practice.
BUYER_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0)
# Circuit-breaker states as published (`adsplatform_buyer_circuit_state`).
BREAKER_CLOSED, BREAKER_OPEN, BREAKER_HALF_OPEN = 0, 1, 2

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


class Histogram:
    """Counts per fixed bucket (the last is +Inf) and their sum since the process started:
    one bisect and two additions an observation."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def as_dict(self) -> dict[str, Any]:
        """As published: {"buckets": counts per bucket, not cumulative; "sum": ...}."""
        return {"buckets": list(self.counts), "sum": self.sum}


class ServingMetrics:
    """Counters of one serving process since it started."""

    def __init__(self) -> None:
        self.started_at = time.time()
        self.requests: Counter[tuple[str, int]] = Counter()
        self.no_fill: Counter[tuple[str, str]] = Counter()
        self.latency: dict[str, Histogram] = {}  # door -> time in the app

    def observe(self, door: str, status: int, seconds: float, headers: Any = None) -> None:
        """One answered request: its door, status and time in the app."""
        self.requests[door, status] += 1
        histogram = self.latency.get(door)
        if histogram is None:
            histogram = self.latency[door] = Histogram(LATENCY_BUCKETS)
        histogram.observe(seconds)
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

    def figures(self, state: dict[str, Any]) -> dict[str, Any]:
        """What is published: counters so far, and the state of this moment (`state_of`)."""
        return {
            "started_at": self.started_at,
            "published_at": time.time(),
            "requests": [[d, s, n] for (d, s), n in self.requests.items()],
            "no_fill": [[d, r, n] for (d, r), n in self.no_fill.items()],
            "latency": {d: h.as_dict() for d, h in self.latency.items()},
            "buckets": list(LATENCY_BUCKETS),
            **state,
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


def state_of(store: Any, sink: Any, outage: Any, pool: Any) -> dict[str, Any]:
    """This moment's gauges (snapshot version and age, the event sink's queue and refusals,
    Redis outage state), the Redis batches' round trips and, per buyer called so far, its
    answers' latency and its circuit's state."""
    now = time.time()
    age = -1.0
    if store.built_at:
        with contextlib.suppress(ValueError):
            age = now - datetime.fromisoformat(store.built_at).timestamp()
    return {
        "gauges": {
            "snapshot_version": float(store.version),
            "snapshot_age_seconds": age,
            "snapshot_loaded_seconds_ago": now - store.loaded_at if store.loaded_at else -1.0,
            "sink_pending": float(sink.pending),
            "sink_dropped_total": float(sink.dropped),
            "sink_accepting": 1.0 if sink.accepting else 0.0,
            "redis_outage": 1.0 if outage.down else 0.0,
        },
        "flush": {**sink.flush_latency.as_dict(), "failures": sink.flush_failures},
        "buyer_buckets": list(BUYER_BUCKETS),
        "buyer_latency": {str(b): h.as_dict() for b, h in pool.latency.items()},
        "buyer_circuit": {str(b): state for b, state in pool.circuit_states().items()},
    }


async def publish_once(
    metrics: ServingMetrics, redis: Any, key: str, state: Callable[[], dict[str, Any]]
) -> None:
    """Write this process's figures now (one SET with expiry)."""
    await redis.set(key, msgspec.json.encode(metrics.figures(state())), ex=EXPIRE_SECONDS)


async def publish_forever(
    metrics: ServingMetrics,
    redis: Any,
    key: str,
    state: Callable[[], dict[str, Any]],
    every: float = PUBLISH_SECONDS,
) -> None:
    """Write this process's figures every `every` seconds until cancelled (a failed write is
    retried at the next turn: these are operational figures, not money)."""
    while True:
        try:
            await publish_once(metrics, redis, key, state)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Redis down: the outage is reported by serving itself
            log.debug("serving metrics not published: %s", exc)
        await asyncio.sleep(every)
