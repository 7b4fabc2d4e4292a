"""Fleet-wide buyer limits: a buyer's QPS cap and its circuit breaker hold across every
serving process and host, through the shared Redis, with no round trip per request.

**QPS cap.** The fleet's budget for a buyer is `qps_cap` calls per wall-clock second: one
counter in Redis per (buyer, second). A process claims tokens of a second in chunks (the
calls it expects over the next CHUNK_SECONDS, from the calls it wanted so far), as Lua
scripts riding in the event sink's batches (`serving.events`); a call spends one of the
process's own tokens, in memory, and a call without one is skipped (`qps_cap`). A claim is
granted only what is left of the second's budget, atomically. From PREFETCH_AT into a second
a process claims for the next one, so that its first calls there do not wait. A process's
first call of a second for which it holds nothing (it had no call late in the second before:
sparse traffic) goes out on credit and is counted with its claim, so the fleet calls a buyer
at most its cap, plus one call per such process, within one second of the hosts' clocks.
What this loses against a perfect shared bucket: tokens a process claimed and did not spend
(its traffic dropped within the chunk), and calls skipped while a claim is on its way (a
process claims again when it holds less than LOW_WATER_SECONDS of traffic).

**Circuit breaker.** Every SYNC_SECONDS each process adds the calls and failures it made to
each buyer since the last sync to a ring of per-second counts in Redis, and the same script
sums the fleet's over the last `window` seconds: with at least `min_calls` calls of which a
share of `error_rate` or more failed, it sets the buyer's open mark for `cooldown` seconds and
clears the counts. Every process reads the mark at its next sync and skips the buyer
(`circuit_open`) until it expires; calls then resume and count afresh, opening the circuit
again if the buyer is still down. Each process's own breaker (`serving.limits.local`) still
opens on its own run of consecutive failures, sooner than the fleet's rate can.
"""

import asyncio
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

from serving.events import EventSink
from serving.keys import RedisKeys
from serving.wire import Lua

log = logging.getLogger(__name__)

# A claim asks for this long of the process's traffic to a buyer.
CHUNK_SECONDS = 0.25
# A process claims again when its tokens would last less than this (a claim takes one batch).
LOW_WATER_SECONDS = 0.05
# From this far into a second a process claims its first tokens of the next.
PREFETCH_AT = 0.8
# Traffic seen in the first moments of a second is taken over at least this long.
MIN_ELAPSED = 0.1
# How often each process shares its buyers' calls and failures and reads the fleet's state.
SYNC_SECONDS = 0.5
# A buyer this process has not called for this many syncs is not synced until it is again
# (its first calls then go out on the last state read, for at most one sync).
IDLE_SYNCS = 20
# A second's token counter outlives the second by a little (clock skew between hosts).
WINDOW_TTL = 5

# KEYS[1] a buyer's tokens granted in one second; ARGV: the cap, the tokens asked for, the
# key's TTL, and the calls already made on credit (counted whatever is left).
CLAIM = Lua("""
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local credit = tonumber(ARGV[4])
local grant = math.max(0, math.min(tonumber(ARGV[2]), tonumber(ARGV[1]) - used - credit))
if grant + credit == 0 then return 0 end
redis.call('INCRBY', KEYS[1], grant + credit)
if used == 0 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
return grant
""")

# KEYS[1] a buyer's ring of per-second counts (fields s<i>: the second slot i holds, c<i>
# calls, f<i> failures); KEYS[2] its open mark. ARGV: now (epoch s), calls, failures, window
# (s), minimum calls, error rate (per mille), cooldown (ms). Returns the mark's ms left, or 0.
BREAKER = Lua("""
local now, window = tonumber(ARGV[1]), tonumber(ARGV[4])
if tonumber(ARGV[2]) > 0 then
  local slot = now % (window + 1)
  if tonumber(redis.call('HGET', KEYS[1], 's' .. slot) or '-1') ~= now then
    redis.call('HSET', KEYS[1], 's' .. slot, now, 'c' .. slot, 0, 'f' .. slot, 0)
  end
  redis.call('HINCRBY', KEYS[1], 'c' .. slot, ARGV[2])
  redis.call('HINCRBY', KEYS[1], 'f' .. slot, ARGV[3])
  redis.call('EXPIRE', KEYS[1], window + 2)
end
local left = redis.call('PTTL', KEYS[2])
if left > 0 then return left end
local calls, failures = 0, 0
for i = 0, window do
  local at = tonumber(redis.call('HGET', KEYS[1], 's' .. i) or '-1')
  if at > now - window and at <= now + 1 then
    calls = calls + tonumber(redis.call('HGET', KEYS[1], 'c' .. i) or '0')
    failures = failures + tonumber(redis.call('HGET', KEYS[1], 'f' .. i) or '0')
  end
end
if calls >= tonumber(ARGV[5]) and failures * 1000 >= tonumber(ARGV[6]) * calls then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[7])
  redis.call('DEL', KEYS[1])
  return tonumber(ARGV[7])
end
return 0
""")


@dataclass(slots=True)
class _Lease:
    """One process's tokens for one buyer."""

    second: int = 0  # the second `tokens` belong to
    tokens: int = 0
    next_second: int = 0  # a second claimed ahead, and its tokens so far
    next_tokens: int = 0
    claiming: bool = False  # a claim is on its way
    spent: int = 0  # the last second whose budget a claim found used up
    wanted: int = 0  # calls wanted in `second`
    wanted_before: int = 0  # calls wanted in the second before it


class FleetQps:
    """Buyers' QPS caps across the fleet; see the module docstring."""

    def __init__(self, sink: EventSink, keys: RedisKeys) -> None:
        self.sink = sink
        self.keys = keys
        self._leases: dict[int, _Lease] = {}

    def take(self, buyer_id: int, cap: int, now: float) -> bool:
        """Whether one call to the buyer may go out now (`now`: epoch seconds). Never waits:
        a claim it needs rides in the next batch."""
        lease = self._leases.get(buyer_id)
        if lease is None:
            lease = self._leases[buyer_id] = _Lease()
        second = int(now)
        if second != lease.second:
            _roll(lease, second)
        lease.wanted += 1
        granted = lease.tokens > 0
        credit = 0
        if granted:
            lease.tokens -= 1
        elif lease.wanted == 1 and not lease.claiming and lease.spent != second:
            # The first call of a second with nothing claimed for it goes out on credit and
            # is counted with the claim it sends: sparse traffic (a call every few seconds,
            # always the first of its second) is not refused for ever.
            granted, credit = True, 1
        if not lease.claiming:
            self._claim_if_low(buyer_id, cap, lease, now - second, credit)
        return granted

    def tokens(self, buyer_id: int) -> int:
        """The tokens this process holds for the buyer's current second (tests)."""
        lease = self._leases.get(buyer_id)
        return lease.tokens if lease is not None else 0

    def _claim_if_low(
        self, buyer_id: int, cap: int, lease: _Lease, elapsed: float, credit: int
    ) -> None:
        rate = max(lease.wanted_before, lease.wanted / max(elapsed, MIN_ELAPSED))
        second = lease.second
        if lease.spent != second and lease.tokens < max(1.0, rate * LOW_WATER_SECONDS):
            target, ask = second, rate * min(CHUNK_SECONDS, 1 - elapsed)
        elif elapsed >= PREFETCH_AT and lease.next_second <= second and lease.spent <= second:
            target, ask = second + 1, rate * CHUNK_SECONDS
            lease.next_second, lease.next_tokens = target, 0
        else:
            return
        lease.claiming = True
        asked = max(1, min(cap, math.ceil(ask)))
        if credit and lease.wanted_before <= 1:
            asked = 0  # sparse: only the call on credit is counted, nothing claimed idle

        def granted(reply: Any) -> None:
            lease.claiming = False
            grant = reply if isinstance(reply, int) else 0
            if not isinstance(reply, int):
                log.debug("buyer %s: QPS claim failed: %s", buyer_id, reply)
                lease.spent = max(lease.spent, target)
            elif grant <= 0 and asked:
                lease.spent = max(lease.spent, target)  # no more claims for that second
            elif target == lease.second:
                lease.tokens += grant
            elif target == lease.next_second:
                lease.next_tokens += grant
            # else: the second is over; its tokens are lost with it

        key = self.keys.buyer_qps(buyer_id, target)
        self.sink.script(CLAIM, (key,), (cap, asked, WINDOW_TTL, credit), granted)


def _roll(lease: _Lease, second: int) -> None:
    lease.wanted_before = lease.wanted if second == lease.second + 1 else 0
    lease.wanted = 0
    lease.tokens = lease.next_tokens if lease.next_second == second else 0
    lease.next_tokens = 0
    lease.second = second


@dataclass(slots=True)
class _Tally:
    calls: int = 0
    failures: int = 0
    open_until: float = 0.0  # epoch seconds: the fleet's open mark, as last read
    idle_syncs: int = 0  # syncs in a row with no call to share


@dataclass
class FleetBreakers:
    """Buyers' circuits across the fleet; see the module docstring."""

    sink: EventSink
    keys: RedisKeys
    error_rate: float = 0.5
    min_calls: int = 20
    window: int = 10  # seconds
    cooldown: float = 5.0
    _tallies: dict[int, _Tally] = field(default_factory=dict)

    def record(self, buyer_id: int, failed: bool) -> None:
        """One call's verdict, shared at the next sync."""
        tally = self._tallies.get(buyer_id)
        if tally is None:
            tally = self._tallies[buyer_id] = _Tally()
        tally.calls += 1
        tally.failures += failed

    def is_open(self, buyer_id: int, now: float) -> bool:
        """Whether the fleet's circuit for the buyer was open at the last sync and still is
        (`now`: epoch seconds)."""
        tally = self._tallies.get(buyer_id)
        return tally is not None and now < tally.open_until

    def sync(self, now: float) -> None:
        """Share every known buyer's calls and failures since the last sync and read its
        fleet state back, in the next batch (one script per buyer)."""
        args = (
            self.window,
            self.min_calls,
            round(self.error_rate * 1000),
            round(self.cooldown * 1000),
        )
        for buyer_id, tally in self._tallies.items():
            calls, failures = tally.calls, tally.failures
            tally.idle_syncs = 0 if calls else tally.idle_syncs + 1
            if tally.idle_syncs > IDLE_SYNCS and now >= tally.open_until:
                continue  # not called here lately: its state is read again with its next call
            tally.calls = tally.failures = 0
            keys = (self.keys.buyer_breaker(buyer_id), self.keys.buyer_breaker_open(buyer_id))
            self.sink.script(
                BREAKER, keys, (int(now), calls, failures, *args),
                self._reader(tally, calls, failures, now),
            )  # fmt: skip

    @staticmethod
    def _reader(tally: _Tally, calls: int, failures: int, sent: float) -> Any:
        def read(reply: Any) -> None:
            if isinstance(reply, int):
                tally.open_until = sent + reply / 1000 if reply > 0 else 0.0
            else:  # not shared: try again with the next sync
                tally.calls += calls
                tally.failures += failures

        return read


class FleetLimits:
    """The fleet-wide QPS caps and breakers of one serving process's buyer pool."""

    def __init__(
        self,
        sink: EventSink,
        keys: RedisKeys,
        *,
        error_rate: float = 0.5,
        min_calls: int = 20,
        window: int = 10,
        cooldown: float = 5.0,
    ) -> None:
        self.qps = FleetQps(sink, keys)
        self.breakers = FleetBreakers(
            sink, keys, error_rate=error_rate, min_calls=min_calls, window=window,
            cooldown=cooldown,
        )  # fmt: skip

    async def run(self, interval: float = SYNC_SECONDS) -> None:
        """Share and read the breakers' state for ever (a task of the serving process)."""
        while True:
            await asyncio.sleep(interval)
            try:
                self.breakers.sync(time.time())
            except Exception:
                log.exception("buyer circuit states not shared")
