"""Event recording: many requests' Redis writes batched into one pipeline (group commit).

Ad-request events are fire-and-forget. Impressions and clicks are billable, so their
response waits until its batch is in Redis; they are de-duplicated per decision and the
impression also adds its cost to the campaign's daily spend, marking the campaign exhausted
once the spend reaches its budget. One small Lua script does that atomically.
"""

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

log = logging.getLogger(__name__)

# KEYS: dedupe key, stream, spend key, exhausted set
# ARGV: dedupe ttl, spend micros, budget micros (0: no budget), spend ttl, stream maxlen,
#       then the event's field/value pairs
RECORD_BILLABLE = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', tonumber(ARGV[1])) then
  return 0
end
local fields = {}
for i = 6, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', unpack(fields))
local cost = tonumber(ARGV[2])
if cost > 0 then
  local spent = redis.call('INCRBY', KEYS[3], cost)
  redis.call('EXPIRE', KEYS[3], tonumber(ARGV[4]))
  local budget = tonumber(ARGV[3])
  if budget > 0 and spent >= budget then
    redis.call('SADD', KEYS[4], ARGV[7])
    redis.call('EXPIRE', KEYS[4], tonumber(ARGV[4]))
  end
end
return 1
"""

STREAM_MAXLEN = 5_000_000


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

    def emit(self, fields: dict[str, str | int]) -> None:
        """Append an event to the stream with the next batch; do not wait for it."""
        self._add(_Op((self.stream,), _flatten(fields), None))

    async def record_billable(
        self,
        dedupe_key: str,
        spend_key: str,
        exhausted_key: str,
        cost_micros: int,
        budget_micros: int,
        fields: dict[str, str | int],
        dedupe_ttl: int,
        spend_ttl: int = 2 * 86400,
    ) -> bool:
        """Record a billable event once per dedupe key; True when it was new."""
        if next(iter(fields)) != "cp":
            raise ValueError("the campaign id must be the first field (ARGV[7] in the script)")
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        args = [dedupe_ttl, cost_micros, budget_micros, spend_ttl, STREAM_MAXLEN]
        keys = (dedupe_key, self.stream, spend_key, exhausted_key)
        self._add(_Op(keys, args + _flatten(fields), done))
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
        if not self._ops:
            return
        ops, self._ops = self._ops, []
        task = asyncio.get_running_loop().create_task(self._flush(ops))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _flush(self, ops: list[_Op]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for op in ops:
            if op.done is None:
                fields = dict(zip(op.args[::2], op.args[1::2], strict=True))
                pipe.xadd(op.keys[0], fields, maxlen=STREAM_MAXLEN, approximate=True)
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
        self._start_flush()
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)


def _flatten(fields: dict[str, str | int]) -> list[Any]:
    out: list[Any] = []
    for k, v in fields.items():
        out.append(k)
        out.append(v)
    return out
