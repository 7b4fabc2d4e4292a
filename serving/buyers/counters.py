"""The buyer pool's counters: outcome counts per (buyer, reason) and latency sums, added to
the day's `buyer_stats` hash in Redis in one pipeline about once a second (`flush`), never
per request; a latency histogram per buyer since the process started, published with the
process's figures (`serving.metrics`); and the response-time bucket counts for the hourly
reports (`serving.latency`)."""

import logging
from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from serving.keys import RedisKeys
from serving.latency import LatencyCounts
from serving.metrics import BUYER_BUCKETS, Histogram

log = logging.getLogger(__name__)

# Buyer counters are kept a little over a month for ad ops and reports.
BUYER_STATS_TTL = 35 * 86400
LATENCY_SUM = "latency_ms_sum"
LATENCY_COUNT = "latency_count"


class BuyerCounters:
    """One serving process's buyer counters; the pool's event loop is their only writer."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[int, str]] = Counter()
        self._latency_sum: defaultdict[int, float] = defaultdict(float)
        self._latency_count: Counter[int] = Counter()
        # buyer id -> seconds to an answer (timeouts are counted, not timed), never reset.
        self.latency: dict[int, Histogram] = {}
        # Response-time bucket counts per buyer for the hourly reports (`serving.latency`).
        self.latency_counts = LatencyCounts()

    def count(self, buyer_id: int, reason: str, n: int = 1) -> None:
        if n:
            self._counts[(buyer_id, reason)] += n

    def answered(self, buyer_id: int, latency_ms: float) -> None:
        """An HTTP answer arrived after `latency_ms`."""
        self._latency_sum[buyer_id] += latency_ms
        self._latency_count[buyer_id] += 1
        histogram = self.latency.get(buyer_id)
        if histogram is None:
            histogram = self.latency[buyer_id] = Histogram(BUYER_BUCKETS)
        histogram.observe(latency_ms / 1000)
        self.latency_counts.answered(buyer_id, latency_ms)

    def timed_out(self, buyer_id: int) -> None:
        self.latency_counts.timed_out(buyer_id)

    def stats(self) -> dict[str, float]:
        """The counters not yet flushed, named as their Redis hash fields."""
        fields: dict[str, float] = {f"{b}:{r}": n for (b, r), n in self._counts.items()}
        for buyer_id, count in self._latency_count.items():
            fields[f"{buyer_id}:{LATENCY_SUM}"] = self._latency_sum[buyer_id]
            fields[f"{buyer_id}:{LATENCY_COUNT}"] = count
        return fields

    async def flush(self, redis: Redis, keys: RedisKeys, day: str) -> None:
        """Add the counters gathered since the last flush to the day's `buyer_stats` hash, in
        one pipeline. If Redis fails they are kept for the next flush (a connection lost
        mid-pipeline may then count some twice: these are operational counters, not money)."""
        counts, self._counts = self._counts, Counter()
        sums, self._latency_sum = self._latency_sum, defaultdict(float)
        latency_counts, self._latency_count = self._latency_count, Counter()
        # Whole milliseconds go to Redis; the fractions wait for the next flush.
        whole = {b: int(total) for b, total in sums.items()}
        for buyer_id, total in sums.items():
            if total - whole[buyer_id]:
                self._latency_sum[buyer_id] += total - whole[buyer_id]
        if not counts and not latency_counts:
            return
        key = keys.buyer_stats(day)
        pipe = redis.pipeline(transaction=False)
        for (buyer_id, reason), n in counts.items():
            pipe.hincrby(key, f"{buyer_id}:{reason}", n)
        for buyer_id, n in latency_counts.items():
            pipe.hincrby(key, f"{buyer_id}:{LATENCY_SUM}", whole.get(buyer_id, 0))
            pipe.hincrby(key, f"{buyer_id}:{LATENCY_COUNT}", n)
        pipe.expire(key, BUYER_STATS_TTL)
        try:
            await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("buyer stats flush failed, keeping them for the next: %s", exc)
            self._counts.update(counts)
            self._latency_count.update(latency_counts)
            for buyer_id, ms in whole.items():
                self._latency_sum[buyer_id] += ms


def parse_buyer_stats(raw: Mapping[Any, Any]) -> dict[int, dict[str, int]]:
    """A `buyer_stats` hash read back from Redis: buyer id → reason → count."""
    parsed: dict[int, dict[str, int]] = defaultdict(dict)
    for name, value in raw.items():
        text = name.decode() if isinstance(name, bytes) else str(name)
        buyer, _, reason = text.partition(":")
        if buyer.isdigit() and reason:
            parsed[int(buyer)][reason] = int(value)
    return dict(parsed)
