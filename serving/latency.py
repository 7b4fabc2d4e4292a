"""Buyer response times as fixed log-scale bucket counts: cheap to count, mergeable, exact
enough for p50/p95/p99.

Bucket 0 holds answers under `FLOOR_MS`; bucket i (1 <= i < LAST) holds
[FLOOR_MS * GROWTH ** (i - 1), FLOOR_MS * GROWTH ** i); the last bucket holds everything
slower. With eight buckets per doubling a bucket is 9 % wide, so a quantile read as its
bucket's geometric middle is within 4.4 % of a value in the bucket. Counts of the same
bucket add, so hours merge into days and days into any range with a plain sum (the rollups
keep one row per hour, buyer and bucket). `TIMEOUT` counts calls that got no answer before
the deadline: they have no response time, but a quantile that falls among them is reported
as a timeout rather than ignored.

Serving counts per process in a Counter (one `math.log` per answer) and drains the counts
into the event stream every few seconds as "lat" events (`drain_latency`). Nothing here
imports Django.
"""

import math
from collections import Counter
from collections.abc import Iterable, Mapping

from serving.events import Event, EventSink

FLOOR_MS = 0.5
PER_DOUBLING = 8
GROWTH = 2 ** (1 / PER_DOUBLING)
# 0.5 ms * 2 ** 16 = 32.8 s: every answer a buyer can give inside any deadline we allow.
LAST = 16 * PER_DOUBLING + 1
TIMEOUT = LAST + 1  # no answer before the deadline
_LOG_GROWTH = math.log(GROWTH)


def bucket_of(ms: float) -> int:
    """The bucket a response time of `ms` milliseconds is counted in."""
    if ms < FLOOR_MS:
        return 0
    return min(LAST, 1 + int(math.log(ms / FLOOR_MS) / _LOG_GROWTH))


def bucket_bounds(bucket: int) -> tuple[float, float]:
    """[low, high) in milliseconds; the last bucket's high is infinite."""
    if bucket <= 0:
        return 0.0, FLOOR_MS
    low = FLOOR_MS * GROWTH ** (bucket - 1)
    return low, (math.inf if bucket >= LAST else FLOOR_MS * GROWTH**bucket)


def bucket_value(bucket: int) -> float:
    """What a bucket reports: its geometric middle (half the floor for bucket 0, the low
    bound for the open last one)."""
    low, high = bucket_bounds(bucket)
    if bucket <= 0:
        return FLOOR_MS / 2
    if math.isinf(high):
        return low
    return math.sqrt(low * high)


def quantile(counts: Mapping[int, int], q: float) -> float | None:
    """The q-quantile (0 < q <= 1, nearest rank) of merged bucket counts, in ms; None when
    nothing was counted, `math.inf` when it falls among the timeouts."""
    total = sum(counts.values())
    if not total:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for bucket in sorted(counts):
        seen += counts[bucket]
        if seen >= rank:
            return math.inf if bucket == TIMEOUT else bucket_value(bucket)
    return math.inf  # not reached: seen ends at total >= rank


def merge(histograms: Iterable[Mapping[int, int]]) -> dict[int, int]:
    """Bucket-wise sum: the histogram of all the answers of the inputs together."""
    out: Counter[int] = Counter()
    for h in histograms:
        out.update(h)
    return dict(out)


class LatencyCounts:
    """One serving process's counts per (buyer, bucket) since the last drain."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[int, int]] = Counter()

    def answered(self, buyer_id: int, ms: float) -> None:
        self._counts[(buyer_id, bucket_of(ms))] += 1

    def timed_out(self, buyer_id: int) -> None:
        self._counts[(buyer_id, TIMEOUT)] += 1

    def drain(self, sink: EventSink, ts_ms: int) -> int:
        """Emit the counts as "lat" events (b: buyer, r: bucket, n: count) with the next
        batch; how many events. Diagnostics, not billing: a process that stops loses at most
        what it counted since its last drain."""
        counts, self._counts = self._counts, Counter()
        if counts:
            sink.emit(
                [Event(t="lat", ts=ts_ms, pl=0, b=b, r=str(k), n=n) for (b, k), n in counts.items()]
            )
        return len(counts)
