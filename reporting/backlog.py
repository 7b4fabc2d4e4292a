"""How far the raw event stream has grown: reported loudly, never trimmed by length.

Serving appends without MAXLEN, because a length cap drops entries whether or not ingestion
has rolled them up (at 2,500 requests/s a cap of 5,000,000 is 17 minutes of stalled
ingestion before billable impressions vanish). Instead every ingestion run, every retention
purge and the admin page measure the stream here: a gauge in Redis (`RedisKeys.
stream_backlog`, a hash a metrics endpoint can read), one log line each time the length
crosses `STREAM_BACKLOG_LIMIT` (up, and back down), and the figures on the admin's ingestion
status. Redis memory is then the limit: size it (and alert on it) for the longest ingestion
outage you mean to ride out; docs/deploy.md "Redis durability".
"""

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.exceptions import ResponseError

log = logging.getLogger(__name__)

# Record the stream's length in the gauge and flip its `over` flag when the limit is crossed;
# returns {length, crossed (1 up, -1 down, 0 neither), crossings so far}. One script, so that
# of many processes measuring at once exactly one sees (and logs) each crossing.
# KEYS: gauge, then the stream's partitions. ARGV: limit, now (epoch seconds), pending, lag.
MEASURE = """
local length = 0
for i = 2, #KEYS do length = length + redis.call('XLEN', KEYS[i]) end
local limit = tonumber(ARGV[1])
local was_over = redis.call('HGET', KEYS[1], 'over') == '1'
local over = length > limit
local crossed = 0
if over and not was_over then
  crossed = 1
  redis.call('HINCRBY', KEYS[1], 'crossings', 1)
elseif was_over and not over then
  crossed = -1
end
redis.call('HSET', KEYS[1], 'length', length, 'limit', limit, 'over', over and 1 or 0,
  'pending', ARGV[3], 'lag', ARGV[4], 'checked_at', ARGV[2])
return {length, crossed, tonumber(redis.call('HGET', KEYS[1], 'crossings') or '0')}
"""


@dataclass(frozen=True)
class Backlog:
    length: int  # entries in the stream, rolled up or not
    pending: int  # read by ingestion, not acknowledged yet
    lag: int | None  # not read by ingestion yet (None: Redis before 7 does not say)
    limit: int
    crossings: int  # times the length went over the limit, ever (until Redis loses it)
    checked_at: float

    @property
    def over(self) -> bool:
        return self.length > self.limit

    @property
    def unrolled(self) -> int | None:
        """Entries ingestion has still to roll up (roughly: pending ones may be committed)."""
        return None if self.lag is None else self.lag + self.pending


def _group_state(client: Redis, stream: str, group_name: str) -> tuple[int, int | None]:
    try:
        groups: Any = client.xinfo_groups(stream)
    except ResponseError:  # no stream yet
        return 0, 0
    for group in groups:
        name = group["name"]
        if (name.decode() if isinstance(name, bytes) else name) == group_name:
            lag = group.get("lag")
            return int(group["pending"]), None if lag is None else int(lag)
    return 0, None  # never read: the whole stream is behind, XLEN says how much


def measure_backlog(
    client: Redis, streams: Sequence[str], group: str, gauge: str, limit: int
) -> Backlog:
    """Measure the stream (all its partitions together), update the gauge, and log when the
    length crosses the limit."""
    pending = 0
    lag: int | None = 0
    for stream in streams:
        p, partition_lag = _group_state(client, stream, group)
        pending += p
        lag = None if lag is None or partition_lag is None else lag + partition_lag
    now = time.time()
    script = client.register_script(MEASURE)
    reply: Any = script(
        keys=[gauge, *streams], args=[limit, now, pending, -1 if lag is None else lag]
    )
    length, crossed, crossings = (int(v) for v in reply)
    backlog = Backlog(length, pending, lag, limit, crossings, now)
    named = streams[0] if len(streams) == 1 else f"{streams[0]} ({len(streams)} partitions)"
    if crossed > 0:
        # Not trimmed: Redis memory grows until ingestion catches up (or Redis refuses writes).
        log.error(
            "event stream %s holds %s entries, over STREAM_BACKLOG_LIMIT %s (not rolled up: %s);"
            " ingestion is behind or stopped, nothing is trimmed until it catches up",
            named, length, limit, "unknown" if lag is None else lag + pending,
        )  # fmt: skip
    elif crossed < 0:
        log.warning("event stream %s back under STREAM_BACKLOG_LIMIT: %s entries", named, length)
    return backlog


def oldest_unrolled_ms(client: Redis, stream: str, group_name: str) -> int | None:
    """The time (epoch ms, from its id) of the oldest entry ingestion has not rolled up: the
    oldest one delivered and not acknowledged, else the first after the group's last
    delivered; None when there is none. Three small reads, for `/metrics`."""
    try:
        groups: Any = client.xinfo_groups(stream)
    except ResponseError:  # no stream yet
        return None
    last = "0-0"
    for group in groups:
        name = group["name"]
        if (name.decode() if isinstance(name, bytes) else name) == group_name:
            last = _text(group["last-delivered-id"])
            if int(group["pending"]):
                summary: Any = client.xpending(stream, group_name)
                return _ms(summary["min"])
    after: Any = client.xrange(stream, min=f"({last}", count=1)
    return _ms(after[0][0]) if after else None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _ms(entry_id: Any) -> int:
    return int(_text(entry_id).partition("-")[0])


def read_gauge(client: Redis, gauge: str) -> dict[str, str]:
    """The gauge as last measured (what a metrics endpoint exports)."""
    raw: Any = client.hgetall(gauge)
    return {k.decode(): v.decode() for k, v in raw.items()}
