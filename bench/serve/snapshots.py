"""Snapshot costs: publishing timed, republishing during a run, and the stall probe."""

import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bench.serve.config import PROBE_RATE
from bench.serve.loads import Load
from bench.serve.servers import Server


@dataclass
class SnapshotCost:
    line_items: int
    build_s: float = 0.0
    encode_s: float = 0.0
    publish_s: float = 0.0  # the rest of publish_snapshot(): version, Redis EVAL
    total_s: float = 0.0
    size: int = 0
    creatives: int = 0
    server_ready_s: float = 0.0
    load_ms: float = 0.0  # decode+index in the serving loop, from its log
    rss: float = 0.0
    hwm: float = 0.0
    swap_ms: list[float] = field(default_factory=list)
    stall_ms: float = 0.0
    probe_p50: float = 0.0
    snapshot: Any = None


class BuildTooSlow(Exception):
    pass


def publish_timed(n_items: int, budget: float) -> SnapshotCost:
    """campaigns.snapshot.publish_snapshot(), timing its build and encode steps on the way
    (the module's own functions, wrapped for the call). A database query still running after
    `budget` seconds is interrupted (BuildTooSlow), so the run stays bounded."""
    from django.db import connection

    from campaigns import snapshot as cs

    connection.ensure_connection()
    raw = connection.connection
    watchdog = threading.Timer(budget, raw.interrupt) if connection.vendor == "sqlite" else None
    if watchdog is not None:
        watchdog.daemon = True
        watchdog.start()
    cost = SnapshotCost(n_items)
    build, encode = cs.build_snapshot, cs.encode_snapshot

    def timed_build(*args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        cost.snapshot = build(*args, **kwargs)
        cost.build_s = time.perf_counter() - t
        return cost.snapshot

    def timed_encode(*args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        encoded = encode(*args, **kwargs)
        cost.encode_s, cost.size = time.perf_counter() - t, encoded.size
        return encoded

    cs.build_snapshot, cs.encode_snapshot = timed_build, timed_encode
    t = time.perf_counter()
    try:
        cs.publish_snapshot()
        cost.total_s = time.perf_counter() - t
    except Exception as exc:
        if "interrupted" in str(exc):
            raise BuildTooSlow(f"publish_snapshot() still running after {budget:.0f} s") from exc
        raise
    finally:
        cs.build_snapshot, cs.encode_snapshot = build, encode
        if watchdog is not None:
            watchdog.cancel()
    cost.publish_s = cost.total_s - cost.build_s - cost.encode_s
    cost.creatives = len(cost.snapshot.creatives)
    return cost


class Republisher:
    """New snapshot versions, each with one line item's bid changed, encoded ahead of time
    and published on a timer (what a publish after an edit looks like to serving, without
    the database work competing for the cores). Each writes its manifest and the one part
    that changed (`campaigns.snapshot.write_snapshot`)."""

    def __init__(self, snapshot: Any, count: int) -> None:
        import msgspec

        from campaigns.snapshot import redis_client, redis_keys
        from serving.snapshot import EncodedSnapshot, encode_snapshot

        self.client, self.keys = redis_client(), redis_keys()
        last = int(self.client.incrby(self.keys.snapshot_seq, count))
        items = list(snapshot.line_items)
        self.versions: list[EncodedSnapshot] = []
        for version in range(last - count + 1, last + 1):
            n = version % len(items)
            items[n] = msgspec.structs.replace(items[n], bid=items[n].bid + Decimal("0.01"))
            changed = msgspec.structs.replace(snapshot, version=version, line_items=list(items))
            self.versions.append(encode_snapshot(changed))
        self.published: list[tuple[int, float]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def publish_next(self) -> None:
        from campaigns.snapshot import write_snapshot

        encoded = self.versions.pop(0)
        write_snapshot(self.client, self.keys, encoded)
        self.published.append((encoded.version, time.monotonic()))

    def every(self, interval: float, first_after: float) -> None:
        def loop() -> None:
            wait = first_after
            while self.versions and not self._stop.wait(wait):
                self.publish_next()
                wait = interval

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


def wait_for_version(server: Server, version: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(v >= version for v, _ in server.loads()):
            return True
        time.sleep(0.1)
    return False


def stall_probe(load: Load, server: Server, cost: SnapshotCost, swaps: int) -> None:
    """Longest pause of the serving loop while new versions load: GET /v1/health at a steady
    1,000/s (open loop) over `swaps` publishes; the worst latency minus the median is the
    stall. Versions are spaced by the time one load took at startup, plus slack."""
    republisher = Republisher(cost.snapshot, swaps)
    spacing = max(2.5, 2.0 + 2.5 * cost.load_ms / 1000)
    republisher.every(spacing, first_after=1.0)
    before = len(server.loads())
    try:
        # As many connections as the load runs: with few, the probe would measure how many
        # requests a rebuilding loop serves per connection, not how long it stops.
        run = load.run(server, "probe", "/v1/health", [], seconds=1.0 + spacing * swaps,
                       rate=PROBE_RATE)  # fmt: skip
    finally:
        republisher.stop()
    if republisher.published:
        wait_for_version(server, republisher.published[-1][0], 60)
    cost.swap_ms = [ms for _, ms in server.loads()[before:]]
    cost.stall_ms = max(0.0, run.max - run.p50)
    cost.probe_p50 = run.p50
    _, cost.hwm = server.memory()
