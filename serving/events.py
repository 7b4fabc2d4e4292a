"""Event recording: many requests' Redis writes batched into one write (group commit).

Each stream entry holds one field, `v`: a JSON array of `Event`s (all the slots of one ad
request, or one impression or click). Ad-request events are fire-and-forget. Impressions and
clicks are billable, so their response waits until its batch is in Redis; they are
de-duplicated per decision by a small Lua script. Spend is charged at the win by another
script in the same batches (`serving.spend`): its reply comes back through a callback, so
the request that won never waits for it.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import hiredis
import msgspec

from serving.cluster import ClusterWire, open_wire
from serving.keys import request_partition
from serving.metrics import LATENCY_BUCKETS, Histogram
from serving.outage import Outage
from serving.wire import Command, Lua, Wire

log = logging.getLogger(__name__)


class Event(msgspec.Struct, frozen=True):
    # "req" (one per slot; li set when it was filled), "loss" (a candidate turned away, r
    # says why), "bid" (an external buyer's valid bid), "imp", "clk", "err" (creative error),
    # "keys" (opportunities per request key, every few seconds per process), "lat" (buyer
    # response times: r a bucket of `serving.latency`, n the count, every few seconds).
    t: str
    ts: int  # epoch milliseconds
    pl: int  # placement
    li: int = 0  # line item; 0 for an ad request nothing filled
    cp: int = 0  # campaign
    adv: int = 0  # advertiser
    cr: int = 0  # creative
    # Impressions: the clearing CPM in micros (= the impression's price in billionths);
    # clicks: a CPC click's price in billionths. What the rollups bill.
    cpm: int = 0
    d: str = ""  # our request id, or a decision's (`serving.ids`); never the caller's
    cs: str = ""  # consent ledger, on the first event of each ad request
    # Pseudonymous user id (keyed hash, `compliance.pseudonym`), only where consent allows
    # ids; never the id as sent.
    u: str = ""
    ip: str = ""  # truncated (`compliance.anonymise.truncate_ip`), never the full address
    r: str = ""  # "loss": why the line item was turned away; "err": the error code
    b: int = 0  # external buyer, for "bid" events and wins of external demand
    # "keys": how many ad opportunities had the request key in r (`serving.request_keys`).
    n: int = 0
    # The caller's request id (x-request-id, BidRequest.id), on the first event of an ad
    # request: for correlation with the caller's logs, never a key.
    rq: str = ""
    # 1: test traffic (OpenRTB `test = 1`): counted apart in the rollups, never billed.
    tt: int = 0
    # A filled slot's "req": what the decision knew, for the telemetry files (JSON array,
    # `serving.telemetry.slot_features`); "" when telemetry is off.
    x: str = ""
    # The door the ad request came in by ("v1", "openrtb", "vast"): on "req" events, and on
    # the impression, click, error and player events of its decisions (from their token).
    dr: str = ""
    # Invalid traffic (`serving.ivt.judge`): an impression or click judged invalid says why
    # (recorded, never billed; the Lua call that records it may fill it in, so it is always
    # encoded, as `"iv":""` when valid); a flag for review that does not refuse it.
    iv: str = ""
    fl: str = ""
    # Country and device type of the ad request (`geo_device`, e.g. "US4"; "" unknown): on
    # "req" events and, from the token, on impressions and clicks. For the reports by
    # country and device; coarse, never more precise than the targeting uses.
    g: str = ""


def geo_device(country: str | None, devicetype: int | None) -> str:
    """The compact country + OpenRTB device type of `Event.g`: "US4", "US", "4" or ""."""
    return f"{country or ''}{devicetype or ''}"


def split_geo_device(code: str) -> tuple[str, int]:
    """(country, device type) of an `Event.g`: ("", 0) where unknown."""
    country = code[:2] if code[:2].isalpha() else ""
    rest = code[len(country) :]
    return country.upper(), int(rest) if rest.isdigit() and len(rest) <= 2 else 0


encode_events = msgspec.json.Encoder().encode
decode_events = msgspec.json.Decoder(list[Event]).decode

# Batches in flight at once; more wait for one to finish, so a slow Redis does not pile up
# connections and tasks.
MAX_INFLIGHT = 4
# Operations waiting for a batch at most; past this (Redis hung or too slow) new ones are
# refused at once (counted in `dropped`) and paid demand stops: memory stays bounded. At
# 2,000 ad requests/s (about 3 operations each) this is over 3 s of traffic.
MAX_PENDING = 20_000


class SinkUnavailable(ConnectionError):
    """The sink refused an operation: its queue is full (Redis hung or too slow)."""


# The most partitions the event stream was ever configured with (RedisKeys.event_partitions),
# raised to ARGV[1]: serving says so on start, readers before they read, so that readers read
# every partition that may hold entries (whichever side was configured first, or lowered).
KNOWN_PARTITIONS = Lua("""
local known = tonumber(redis.call('GET', KEYS[1]) or '0')
local configured = tonumber(ARGV[1])
if configured > known then redis.call('SET', KEYS[1], configured); known = configured end
return known
""")

XADD, SCRIPT, COMMAND = 0, 1, 2
# A script op whose connection lost its scripts (SCRIPT FLUSH) is retried this many times.
SCRIPT_RETRIES = 1


@dataclass(slots=True)
class _Op:
    kind: int
    keys: Sequence[str]
    args: Sequence[Any]
    done: asyncio.Future[Any] | None
    script: Lua | None = None  # for SCRIPT
    # Called with the reply (or the exception) of an operation nobody awaits.
    callback: Callable[[Any], None] | None = None
    retries: int = 0


@dataclass
class EventSink:
    """Group commit of serving's Redis writes (and the few reads that ride with them) on one
    lean connection (`serving.wire`), opened on first use and reopened after a failure."""

    url: str
    stream: str
    # The event stream's partitions (EVENT_STREAM_PARTITIONS), `stream` first; none: only it.
    streams: tuple[str, ...] = ()
    flush_delay: float = 0.002
    idle_delay: float = 0.010
    max_batch: int = 256
    # Every wait on Redis ends after this long: connecting, and a batch's replies (a sweep,
    # `_watch`, fails a connection whose oldest batch has waited longer).
    timeout: float = 1.0
    max_pending: int = MAX_PENDING
    outage: Outage = field(default_factory=Outage)
    _ops: list[_Op] = field(default_factory=list)
    # The pending flush, and when it is due: kept here, because a loop's call_at hands back a
    # plain Handle (no `when()`) when the time has already come (uvloop rounds delays to
    # whole milliseconds, so a 2 ms delay taken late is "now").
    _timer: asyncio.Handle | None = None
    _due: float = 0.0
    _inflight: set[asyncio.Task[None]] = field(default_factory=set)
    _wire: Wire | ClusterWire | None = None
    _connecting: asyncio.Lock | None = None
    _watching: asyncio.Task[None] | None = None
    # The last batch failed to reach Redis (until one succeeds).
    _down: bool = False
    dropped: int = 0
    # Each batch's round trip that reached Redis (connecting included), and those that did not.
    flush_latency: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS))
    flush_failures: int = 0

    @property
    def accepting(self) -> bool:
        """Whether what is emitted now will most likely be recorded: the last batch reached
        Redis and the queue has room. Paid demand is served only then (README "Redis
        outage")."""
        wire = self._wire
        return (
            not self._down
            and (wire is None or not wire.closed)  # Redis closed it: a stop or a crash
            and len(self._ops) < self.max_pending
        )

    @property
    def pending(self) -> int:
        """Operations waiting for a batch (bounded by `max_pending`)."""
        return len(self._ops)

    def stream_for(self, decision_id: str) -> str:
        """The partition of a decision's events: by its request (`request_partition`)."""
        streams = self.streams
        if len(streams) < 2:
            return self.stream
        return streams[request_partition(decision_id, len(streams))]

    def emit(self, events: list[Event]) -> None:
        """Append events to the stream (the partition of the first one's decision) with the
        next batch; do not wait for it."""
        self._add(_Op(XADD, (self.stream_for(events[0].d),), (encode_events(events),), None))

    def call(self, command: str, *args: Any) -> None:
        """Run a Redis command with the next batch; do not wait for it (counters)."""
        self._add(_Op(COMMAND, (), (command, *args), None))

    async def fetch(self, command: str, *args: Any) -> Any:
        """Run a command with the next batch and wait for its raw reply (`serving.wire`: a
        flat list for HGETALL): a read that costs no round trip of its own (frequency
        counters, rate limits)."""
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._add(_Op(COMMAND, (), (command, *args), done))
        return await done

    def script(
        self,
        script: Lua,
        keys: Sequence[str],
        args: Sequence[Any],
        callback: Callable[[Any], None] | None = None,
    ) -> None:
        """Run a Lua script with the next batch without waiting for it; the callback gets
        its reply, or the exception, when the batch is back (a win's charge)."""
        self._add(_Op(SCRIPT, keys, args, None, script, callback))

    async def run_script(self, script: Lua, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run a Lua script with the next batch and wait for its reply (billable events:
        the response must not return before they are in Redis)."""
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._add(_Op(SCRIPT, keys, args, done, script))
        return await done

    def _add(self, op: _Op) -> None:
        if len(self._ops) >= self.max_pending:
            self._refuse(op)
            return
        self._ops.append(op)
        if len(self._ops) >= self.max_batch:
            self._start_flush()
            return
        # Someone awaits this op: flush within flush_delay. Otherwise wait up to idle_delay,
        # so that at low traffic many requests still share one batch without delaying any
        # response.
        loop = asyncio.get_running_loop()
        due = loop.time() + (self.flush_delay if op.done is not None else self.idle_delay)
        if self._timer is None or due < self._due:
            if self._timer is not None:
                self._timer.cancel()
            self._timer, self._due = loop.call_at(due, self._start_flush), due

    def _refuse(self, op: _Op) -> None:
        exc = SinkUnavailable(f"over {self.max_pending} Redis operations waiting")
        self.dropped += 1
        self.outage.failed("events", exc)
        if op.callback is not None:
            op.callback(exc)
        if op.done is not None and not op.done.done():
            op.done.set_exception(exc)

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

    async def _connection(self) -> Wire | ClusterWire:
        wire = self._wire
        if wire is not None and not wire.closed:
            return wire
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        if self._watching is None:
            self._watching = asyncio.get_running_loop().create_task(self._watch())
        async with self._connecting:
            if self._wire is None or self._wire.closed:
                if self._wire is not None:  # a cluster's other masters' connections
                    self._wire.close()
                self._wire = await open_wire(self.url, self.timeout)
            return self._wire

    async def _watch(self) -> None:
        """A hung Redis: stop paid demand once the oldest batch has waited a quarter of
        `timeout` (its events may never land), and fail the connection's batches once it
        has waited all of it."""
        interval = max(0.01, min(0.25, self.timeout / 4))
        while True:
            await asyncio.sleep(interval)
            wire = self._wire
            if wire is None or wire.closed:
                continue
            now = time.monotonic()
            if wire.oldest_wait(now) > self.timeout / 4:
                self._down = True
            wire.abort_if_stalled(now, self.timeout)

    def _commands(
        self, wire: Wire | ClusterWire, ops: list[_Op]
    ) -> tuple[list[Command], list[int]]:
        """The batch's commands, and for each op the index of its reply (a script's first
        use on a connection is preceded by its SCRIPT LOAD)."""
        commands: list[Command] = []
        where: list[int] = []
        for op in ops:
            if op.kind == XADD:
                # No MAXLEN: it would drop entries not rolled up yet (billable ones too).
                # Ingestion and retention trim behind the watermark; a stream past
                # STREAM_BACKLOG_LIMIT is reported instead (reporting.backlog).
                commands.append(("XADD", op.keys[0], "*", "v", op.args[0]))
            elif op.kind == SCRIPT:
                script = op.script
                assert script is not None  # noqa: S101 - set for SCRIPT ops
                if script.sha not in wire.loaded:
                    commands.append(("SCRIPT", "LOAD", script.body))
                    wire.loaded.add(script.sha)
                commands.append(("EVALSHA", script.sha, len(op.keys), *op.keys, *op.args))
            else:
                commands.append(op.args)
            where.append(len(commands) - 1)
        return commands, where

    async def _flush(self, ops: list[_Op]) -> None:
        results: list[Any]
        started = time.perf_counter()
        try:
            wire = await self._connection()
            commands, where = self._commands(wire, ops)
            replies = await wire.send(commands)
            results = [replies[i] for i in where]
            self.flush_latency.observe(time.perf_counter() - started)
            self._down = False
            self.outage.ok("events")
        except Exception as exc:  # Redis unreachable: fail the waiters, count the rest
            # Logged once per outage (`serving.outage`), not once per batch.
            self.flush_failures += 1
            self._down = True
            self.outage.failed("events", exc)
            results = [exc] * len(ops)
        retry: list[_Op] = []
        for op, result in zip(ops, results, strict=True):
            if isinstance(result, hiredis.ReplyError) and str(result).startswith("NOSCRIPT"):
                if self._wire is not None and op.script is not None:
                    self._wire.loaded.discard(op.script.sha)  # the server forgot it
                if op.retries < SCRIPT_RETRIES:
                    op.retries += 1
                    retry.append(op)
                    continue
            if op.callback is not None:
                try:
                    op.callback(result)
                except Exception:
                    log.exception("a batch callback failed")
            if op.done is None:
                if isinstance(result, Exception):
                    self.dropped += 1
            elif not op.done.done():
                if isinstance(result, Exception):
                    op.done.set_exception(result)
                else:
                    op.done.set_result(result)
        if retry:  # first in the next batch, which starts as this one is done
            self._ops[:0] = retry

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

    async def close(self) -> None:
        """Drain, then close the connection (shutdown)."""
        await self.drain()
        if self._watching is not None:
            self._watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watching
            self._watching = None
        if self._wire is not None:
            self._wire.close()
        self._wire = None
