"""An HTTP/1.1 load generator on asyncio, closed or open loop (used by `bench/serving.py`).

Raw keep-alive connections driven by `asyncio.Protocol` (an HTTP client library, or even
asyncio streams, would be the bottleneck), each with at most one request in flight.

- closed loop (`"rate": 0`): every connection sends its next request as soon as the answer
  to the previous one is in. It finds the saturation throughput; its latencies hide queueing.
- open loop (`"rate": R`): request i is due at start + i / R whatever the server does. A due
  request goes out on a free connection; when none is free it is counted late and waits
  for the first connection that frees. Its latency runs from the time it was due, not from
  when it went out, so queueing in front of a slow server shows (no coordinated omission).
  With a core of its own the schedule is kept to well under a millisecond by spinning the
  event loop between due times (epoll sleeps in whole milliseconds); sharing a core with
  the server ("spin": 0) it sleeps instead, and requests leave up to a millisecond late, a
  delay that counts in their latency (pessimistic by that much).
  `lag` reports how late requests left when a connection was free: the generator's own
  error, already inside the latencies.

    python -m bench.loadgen SPEC.json  ->  one JSON line of results on stdout

SPEC: "port", "requests" (raw request texts, used in turn), "seconds", "warmup",
"connections", "rate" (0: closed loop), "spin" (seconds; default 1.2 ms). The run prints
"MEASURE start" and "MEASURE end" lines when the measured window opens and closes (the
caller samples CPU counters then).
Only 127.0.0.1 is contacted; the run ends by itself (the schedule stops at warm-up + seconds
and unanswered requests are given up `DRAIN` seconds later).
"""

import asyncio
import collections
import contextlib
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

DRAIN = 3.0  # seconds to wait for answers after the schedule ends
SPIN = 0.0012  # below this, wait for the next due time by spinning, not sleeping

now = time.perf_counter


class Conn(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self, gen: "Generator") -> None:
        self.gen = gen
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.need = -1  # bytes of the whole response once its head is parsed
        self.chunked = False
        self.status = 0
        self.due = 0.0  # when the request in flight was due (open) or sent (closed)
        self.ready = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.ready.set_result(None)

    def send(self, request: bytes, due: float) -> None:
        self.due = due
        assert self.transport is not None
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while True:
            if self.need < 0:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(buf[:end]).lower()
                self.status = status = int(head[9:12])
                self.chunked = False
                if status in (204, 304) or status < 200:
                    length = 0
                elif (at := head.find(b"\r\ncontent-length:")) >= 0:
                    line_end = head.find(b"\r\n", at + 2)
                    length = int(head[at + 17 : line_end if line_end > 0 else None])
                elif b"transfer-encoding: chunked" in head:
                    self.chunked, length = True, 0
                else:
                    length = 0
                self.need = end + 4 + length
            if self.chunked:
                # The body ends with a zero-size chunk; the servers here rarely chunk.
                last = buf.find(b"\r\n0\r\n\r\n", self.need - 2)
                if last < 0:
                    return
                self.need = last + 7
                self.chunked = False
            if len(buf) < self.need:
                return
            del buf[: self.need]
            self.need = -1
            self.gen.done(self, self.status)
            if not buf:
                return

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.gen.lost(self)


class Generator:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.port: int = spec["port"]
        self.reqs = [r.encode("latin-1") for r in spec["requests"]]
        self.seconds: float = spec["seconds"]
        self.warmup: float = spec["warmup"]
        self.n_conns: int = spec["connections"]
        self.rate: float = spec.get("rate", 0)
        # Spin (busy-wait) for due times closer than this; 0 when the generator shares its
        # core with the server: it would take that core's time from the server.
        self.spin: float = spec.get("spin", SPIN)
        self.next_req = 0
        self.latencies: list[float] = []
        self.lags: list[float] = []
        self.statuses: collections.Counter[int] = collections.Counter()
        self.errors = 0
        self.late = 0
        self.sent_in_window = 0
        self.done_in_window = 0
        self.free: list[Conn] = []
        self.backlog: collections.deque[float] = collections.deque()
        self.inflight: set[Conn] = set()
        self.worst: list[tuple[float, float]] = []  # (latency, due - warm_until)
        self.start = self.warm_until = self.stop_at = 0.0
        self.next_due = 0.0  # open loop: when the next request is due
        self.n_scheduled = 0
        self.all_sent = asyncio.Event()

    # -- connections ------------------------------------------------------------------

    async def connect(self) -> Conn | None:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(lambda: Conn(self), "127.0.0.1", self.port)
        except OSError:
            self.errors += 1
            return None
        return conn

    def lost(self, conn: Conn) -> None:
        if conn in self.inflight:  # the server closed with a request in flight
            self.inflight.discard(conn)
            self.errors += 1
        with contextlib.suppress(ValueError):
            self.free.remove(conn)
        if now() < self.stop_at:
            asyncio.get_running_loop().create_task(self._replace())

    async def _replace(self) -> None:
        await asyncio.sleep(0.01)
        conn = await self.connect()
        if conn is not None:
            self.release(conn)

    # -- requests -----------------------------------------------------------------------

    def _send(self, conn: Conn, due: float) -> None:
        req = self.reqs[self.next_req]
        self.next_req = (self.next_req + 1) % len(self.reqs)
        self.inflight.add(conn)
        conn.send(req, due)
        if self.warm_until <= due < self.stop_at:
            self.sent_in_window += 1

    def done(self, conn: Conn, status: int) -> None:
        t = now()
        self.inflight.discard(conn)
        due = conn.due
        if due >= self.warm_until and due < self.stop_at:
            latency = t - due
            self.latencies.append(latency)
            self.statuses[status] += 1
            if latency > 0.005:
                self.worst.append((latency, due - self.warm_until))
        if self.warm_until <= t < self.stop_at:
            self.done_in_window += 1
        self.release(conn)

    def release(self, conn: Conn) -> None:
        """A connection is free: give it the oldest late request, or the next one."""
        t = now()
        if self.rate:
            if self.backlog:
                self._send(conn, self.backlog.popleft())
            else:
                self.free.append(conn)
                self.pump(t)
        elif t < self.stop_at:
            self._send(conn, t)
        else:
            self.free.append(conn)

    def pump(self, t: float) -> None:
        """Open loop: send every request that is due by now."""
        while self.next_due <= t and self.next_due < self.stop_at:
            due = self.next_due
            self.next_due = self.start + (self.n_scheduled + 1) / self.rate
            self.n_scheduled += 1
            if self.free and not self.backlog:
                if due >= self.warm_until:
                    self.lags.append(t - due)
                self._send(self.free.pop(), due)
            else:
                self.backlog.append(due)
                if due >= self.warm_until:
                    self.late += 1

    async def run(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        conns = [c for c in await asyncio.gather(*(self.connect() for _ in range(self.n_conns)))]
        self.start = now() + 0.05
        self.warm_until = self.start + self.warmup
        self.stop_at = self.warm_until + self.seconds
        marks = (self.warm_until, "start"), (self.stop_at, "end")
        for at, name in marks:
            loop.call_at(loop.time() + at - now(), _mark, name)
        cpu_at: dict[str, float] = {}
        for at, name in marks:
            loop.call_at(loop.time() + at - now(), _cpu_mark, cpu_at, name)
        await asyncio.sleep(max(0.0, self.start - now()))
        self.next_due, self.n_scheduled = self.start, 0
        for conn in conns:
            if conn is not None:
                self.release(conn)
        if self.rate:
            while (t := now()) < self.stop_at:
                self.pump(t)
                wait = self.next_due - now()
                await asyncio.sleep(0 if wait < self.spin else wait - self.spin)
        else:
            await asyncio.sleep(max(0.0, self.stop_at - now()))
        deadline = self.stop_at + DRAIN
        while (self.inflight or self.backlog) and now() < deadline:
            await asyncio.sleep(0.005)
        # Requests never answered count with the time they waited until given up.
        unfinished = [c.due for c in self.inflight] + list(self.backlog)
        given_up = now()
        for due in unfinished:
            if self.warm_until <= due < self.stop_at:
                self.latencies.append(given_up - due)
        for conn in [*self.free, *self.inflight]:
            if conn.transport is not None:
                conn.transport.close()
        return self.summary(len(unfinished), cpu_at)

    def summary(self, unfinished: int, cpu_at: dict[str, float]) -> dict[str, Any]:
        lat = sorted(self.latencies) or [0.0]
        lags = sorted(self.lags) or [0.0]

        def pct(values: list[float], q: float) -> float:
            return values[min(len(values) - 1, int(q * len(values)))] * 1000

        self.worst.sort(reverse=True)
        cpu = cpu_at.get("end", 0.0) - cpu_at.get("start", 0.0)
        return {
            "offered": self.rate,
            "rps": self.done_in_window / self.seconds,
            "sent_rps": self.sent_in_window / self.seconds,
            "n": len(self.latencies),
            "p50": pct(lat, 0.50),
            "p90": pct(lat, 0.90),
            "p99": pct(lat, 0.99),
            "p999": pct(lat, 0.999),
            "max": lat[-1] * 1000,
            "lag_p50": pct(lags, 0.5),
            "lag_p99": pct(lags, 0.99),
            "late": self.late,
            "unfinished": unfinished,
            "errors": self.errors + sum(n for s, n in self.statuses.items() if s >= 400),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "cpu": cpu / self.seconds,  # the generator's own CPU use, 1.0 = its whole core
            "worst": [(round(lat_ * 1000, 2), round(at, 3)) for lat_, at in self.worst[:8]],
        }


def _mark(name: str) -> None:
    print(f"MEASURE {name}", flush=True)


def _cpu_mark(store: dict[str, float], name: str) -> None:
    times = os.times()
    store[name] = times.user + times.system


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    # No cyclic garbage collection in the generator: a collection pauses it for milliseconds,
    # and every reply read during the pause would count the pause as server latency. What it
    # allocates is freed by reference counting and bounded by the run.
    gc.disable()
    with contextlib.suppress(KeyboardInterrupt):  # the parent reports the interruption
        result = asyncio.run(Generator(spec).run())
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
