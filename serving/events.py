"""Event recording: many requests' Redis writes batched into one pipeline (group commit).

Each stream entry holds one field, `v`: a JSON array of `Event`s (all the slots of one ad
request, or one impression or click). Ad-request events are fire-and-forget. Impressions and
clicks are billable, so their response waits until its batch is in Redis; they are
de-duplicated per decision and the impression also adds its cost to the campaign's daily
spend, marking the campaign exhausted once the spend reaches its budget. One small Lua
script does that atomically.
"""

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
from redis.asyncio import Redis

log = logging.getLogger(__name__)


class Event(msgspec.Struct, frozen=True):
    t: str  # "req", "imp" or "clk"
    ts: int  # epoch milliseconds
    pl: int  # placement
    li: int = 0  # line item; 0 for an ad request nothing filled
    cp: int = 0  # campaign
    adv: int = 0  # advertiser
    cr: int = 0  # creative
    cpm: int = 0  # clearing CPM in micros (impressions)
    d: str = ""  # decision or request id
    cs: str = ""  # consent ledger, on the first event of each ad request
    # Pseudonymous user id (keyed hash, `compliance.pseudonym`), only where consent allows
    # ids; never the id as sent.
    u: str = ""
    ip: str = ""  # truncated (`compliance.anonymise.truncate_ip`), never the full address


encode_events = msgspec.json.Encoder().encode
decode_events = msgspec.json.Decoder(list[Event]).decode

# KEYS: dedupe key, stream, spend key, exhausted set
# ARGV: dedupe ttl, spend (billionths), budget (billionths; 0: none), spend ttl,
#       stream maxlen, campaign id, encoded events
RECORD_BILLABLE = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', tonumber(ARGV[1])) then
  return 0
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'v', ARGV[7])
local cost = tonumber(ARGV[2])
if cost > 0 then
  local spent = redis.call('INCRBY', KEYS[3], cost)
  redis.call('EXPIRE', KEYS[3], tonumber(ARGV[4]))
  local budget = tonumber(ARGV[3])
  if budget > 0 and spent >= budget then
    redis.call('SADD', KEYS[4], ARGV[6])
    redis.call('EXPIRE', KEYS[4], tonumber(ARGV[4]))
  end
end
return 1
"""

# A safety cap on memory if ingestion stops for long; sized for hours of traffic.
STREAM_MAXLEN = 5_000_000
# Batches in flight at once; more wait for one to finish, so a slow Redis does not pile up
# connections and tasks.
MAX_INFLIGHT = 4


@dataclass(slots=True)
class _Op:
    keys: Sequence[str]
    args: Sequence[Any]
    done: asyncio.Future[Any] | None


@dataclass
class EventSink:
    redis: Redis
    stream: str
    flush_delay: float = 0.002
    max_batch: int = 256
    _ops: list[_Op] = field(default_factory=list)
    _timer: asyncio.TimerHandle | None = None
    _inflight: set[asyncio.Task[None]] = field(default_factory=set)
    dropped: int = 0

    def __post_init__(self) -> None:
        self._record = self.redis.register_script(RECORD_BILLABLE)

    def emit(self, events: list[Event]) -> None:
        """Append events to the stream with the next batch; do not wait for it."""
        self._add(_Op((self.stream,), (encode_events(events),), None))

    async def record_billable(
        self,
        event: Event,
        *,
        dedupe_key: str,
        spend_key: str,
        exhausted_key: str,
        cost: int,
        budget: int,
        dedupe_ttl: int,
        spend_ttl: int = 2 * 86400,
    ) -> bool:
        """Record a billable event once per dedupe key; True when it was new."""
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        keys = (dedupe_key, self.stream, spend_key, exhausted_key)
        args = (
            dedupe_ttl, cost, budget, spend_ttl, STREAM_MAXLEN, event.cp, encode_events([event]),
        )  # fmt: skip
        self._add(_Op(keys, args, done))
        return bool(await done)

    def _add(self, op: _Op) -> None:
        self._ops.append(op)
        if len(self._ops) >= self.max_batch:
            self._start_flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.flush_delay, self._start_flush)

    def _start_flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._ops or len(self._inflight) >= MAX_INFLIGHT:
            return  # a finishing batch starts the next one
        ops, self._ops = self._ops, []
        task = asyncio.get_running_loop().create_task(self._flush(ops))
        self._inflight.add(task)
        task.add_done_callback(self._flush_done)

    def _flush_done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        if self._ops and self._timer is None:
            self._start_flush()

    async def _flush(self, ops: list[_Op]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for op in ops:
            if op.done is None:
                pipe.xadd(op.keys[0], {"v": op.args[0]}, maxlen=STREAM_MAXLEN, approximate=True)
            else:
                await self._record(keys=op.keys, args=op.args, client=pipe)
        try:
            results = await pipe.execute(raise_on_error=False)
        except Exception as exc:  # Redis unreachable: fail the waiters, count the rest
            log.warning("event flush failed: %s", exc)
            results = [exc] * len(ops)
        for op, result in zip(ops, results, strict=True):
            if op.done is None:
                if isinstance(result, Exception):
                    self.dropped += 1
            elif not op.done.done():
                if isinstance(result, Exception):
                    op.done.set_exception(result)
                else:
                    op.done.set_result(result)

    async def drain(self) -> None:
        """Flush what is pending and wait for batches in flight (shutdown, tests)."""
        while True:
            self._start_flush()
            pending = [t for t in self._inflight if not t.done()]
            if not pending:
                if not self._ops:
                    return
                await asyncio.sleep(0)  # let finished batches' callbacks run
                continue
            await asyncio.wait(pending)
