"""What a snapshot swap costs a serving process: patched (what changed) against a full rebuild.

Run: nice -n 5 .venv/bin/python bench/swap_cost.py [--line-items 10000] [--swaps 5]

In process, no server: the book of `bench/serving.py` (`bench.book.load_book`, same seed),
published once through `publish_snapshot()`, then new versions with one line item changed,
1 % changed and everything changed (every bid and every creative), each written as
`campaigns.snapshot.write_snapshot` writes it. A `serving.store.SnapshotStore` loads each
version twice in the same run: patched (its parts cache kept: it fetches and decodes the
parts it lacks and patches the index) and as a full rebuild (its parts cache emptied first:
it fetches, decodes and compiles the whole book, which is what every swap cost before
snapshots were published in parts). For each: CPU ms of the process (the swap and the
retirement of the old index that follows it; the ticker's own idle CPU subtracted), wall ms,
and the longest event-loop stall, measured by a task that sleeps 1 ms at a time and records
how late it wakes up. Embedded Redis unless REDIS_URL is set; a key prefix of its own,
deleted at the end. Prints the publish time of one changed line item against a full publish.
"""

import argparse
import asyncio
import contextlib
import functools
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

from bench.book import load_book  # noqa: E402
from bench.common import django_bench  # noqa: E402
from bench.serve.snapshots import publish_timed  # noqa: E402

TICK = 0.001
DEFAULT_SHARE = 0.25  # serving.store.FULL_REBUILD_SHARE, read at startup


@dataclass
class Ticker:
    """A task that wakes every millisecond and records how late it woke: a stall of the
    loop shows up as lateness."""

    worst: float = 0.0
    task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t = loop.time()
            await asyncio.sleep(TICK)
            self.worst = max(self.worst, loop.time() - t - TICK)

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


@dataclass
class Swap:
    cpu_ms: list[float] = field(default_factory=list)
    wall_ms: list[float] = field(default_factory=list)
    stall_ms: list[float] = field(default_factory=list)
    how: set[str] = field(default_factory=set)


def changed_bids(snapshot: Any, ids: set[int], step: int) -> Any:
    import msgspec

    bump = Decimal("0.01") * step
    items = [
        msgspec.structs.replace(li, bid=li.bid + bump) if li.id in ids else li
        for li in snapshot.line_items
    ]
    return msgspec.structs.replace(snapshot, line_items=items)


def everything_changed(snapshot: Any, step: int) -> Any:
    import msgspec

    snapshot = changed_bids(snapshot, {li.id for li in snapshot.line_items}, step)
    creatives = [
        msgspec.structs.replace(c, markup=f"{c.markup}<!-- {step} -->") for c in snapshot.creatives
    ]
    return msgspec.structs.replace(snapshot, creatives=creatives)


async def idle_cpu_per_second(seconds: float = 1.0) -> float:
    """The ticker's own CPU, to subtract from what a swap measures."""
    ticker = Ticker()
    ticker.start()
    cpu, t = time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    rate = (time.process_time() - cpu) / (time.perf_counter() - t)
    await ticker.stop()
    return rate


async def measure(
    store: Any, publish: Callable[[], object], full: bool, idle: float, result: Swap
) -> None:
    from serving import store as store_module

    """One swap: publish a version, let the store load it, wait for the old index to be
    retired; CPU, wall time and the longest stall of all that."""
    publish()
    # The full rebuild: forget every part (fetch and decode the whole book) and compile it
    # all, whatever changed.
    if full:
        store._parts = {}
    store_module.FULL_REBUILD_SHARE = -1.0 if full else DEFAULT_SHARE
    await asyncio.sleep(0.05)  # settle
    ticker = Ticker()
    ticker.start()
    await asyncio.sleep(0.005)
    ticker.worst = 0.0
    cpu, t = time.process_time(), time.perf_counter()
    swapped = await store.refresh()
    wall = time.perf_counter() - t
    if store._retiring is not None:
        await store._retiring
    cpu_s = time.process_time() - cpu - idle * (time.perf_counter() - t)
    await ticker.stop()
    if not swapped:
        raise RuntimeError("the store did not swap")
    result.cpu_ms.append(cpu_s * 1000)
    result.wall_ms.append(wall * 1000)
    result.stall_ms.append(ticker.worst * 1000)


async def serving_side(args: argparse.Namespace, snapshot: Any, keys: Any) -> list[list[str]]:
    import logging

    from redis.asyncio import Redis as AsyncRedis

    from campaigns.snapshot import redis_client, write_snapshot
    from serving import store as store_module
    from serving.snapshot import encode_snapshot
    from serving.store import SnapshotStore

    store_module.RETIRE_AFTER_SECONDS = 0.02  # retire within the measured window
    global DEFAULT_SHARE
    DEFAULT_SHARE = store_module.FULL_REBUILD_SHARE
    hows: list[str] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage()
            if "loaded" in message:
                hows.append(message.rsplit("(", 1)[-1].split(":")[0].rstrip(")"))

    logging.getLogger("serving.store").addHandler(Catch())
    logging.getLogger("serving.store").setLevel(logging.INFO)
    from django.conf import settings

    client = redis_client()
    store = SnapshotStore(AsyncRedis.from_url(settings.REDIS_URL), keys)
    await store.refresh()  # the first version: a full load
    assert store.index is not None
    idle = await idle_cpu_per_second()
    version = store.version
    rng = random.Random(5)
    ids = [li.id for li in snapshot.line_items]
    cases: list[tuple[str, Callable[[int], Any]]] = [
        ("1 line item", lambda step: changed_bids(snapshot, {rng.choice(ids)}, step)),
        (
            f"1 % ({len(ids) // 100} line items)",
            lambda step: changed_bids(snapshot, set(rng.sample(ids, len(ids) // 100)), step),
        ),
        ("everything", lambda step: everything_changed(snapshot, step)),
    ]
    rows: list[list[str]] = []
    import msgspec

    for label, make in cases:
        results = {"patched": Swap(), "full": Swap()}
        for n in range(args.swaps):
            for mode in ("patched", "full"):  # interleaved: both see the same machine
                version += 1
                changed = msgspec.structs.replace(make(version), version=version)
                encoded = encode_snapshot(changed)
                del hows[:]
                await measure(
                    store,
                    functools.partial(write_snapshot, client, keys, encoded),
                    full=mode == "full",
                    idle=idle,
                    result=results[mode],
                )
                results[mode].how.update(hows)
            print(f"  {label}: swap {n + 1}/{args.swaps}", file=sys.stderr)
        for mode, r in results.items():
            name = "full rebuild" if mode == "full" else "patched"
            rows.append(
                [
                    label,
                    name,
                    "/".join(sorted(r.how)),
                    f"{statistics.median(r.cpu_ms):.1f}",
                    f"{statistics.median(r.wall_ms):.1f}",
                    f"{max(r.stall_ms):.1f}",
                ]
            )
    await store.redis.aclose()
    return rows


def publish_side(snapshot: Any, keys: Any) -> list[list[str]]:
    """encode + write of a version with one line item changed, against a full publish
    (every part new: a key prefix with nothing in it)."""
    import msgspec

    from campaigns.snapshot import redis_client, write_snapshot
    from serving.keys import RedisKeys
    from serving.snapshot import encode_snapshot

    client = redis_client()
    rows = []
    for label, target_keys, make in [
        ("full (every part new)", RedisKeys(f"{keys.prefix}fresh:"), lambda s: s),
        ("1 line item changed", keys, lambda s: changed_bids(s, {s.line_items[7].id}, 99)),
    ]:
        version = int(client.incr(keys.snapshot_seq)) + 1000
        changed = msgspec.structs.replace(make(snapshot), version=version)
        t = time.perf_counter()
        encoded = encode_snapshot(changed)
        encode_ms = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        _, written = write_snapshot(client, target_keys, encoded)
        write_ms = (time.perf_counter() - t) * 1000
        rows.append(
            [
                label,
                f"{encode_ms:.0f}",
                f"{write_ms:.0f}",
                f"{encoded.size / 1e6:.1f}",
                f"{written / 1e3:,.0f}",
                f"{len(encoded.parts)}",
            ]
        )
    return rows


def table(head: list[str], rows: list[list[str]], text_columns: int) -> None:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for n, row in enumerate([head, *rows]):
        cells = zip(row, widths, strict=True)
        print("  ".join(c.ljust(w) if i < text_columns else c.rjust(w)
                        for i, (c, w) in enumerate(cells)))  # fmt: skip
        if n == 0:
            print("  ".join("-" * w for w in widths))


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--line-items", type=int, default=10_000)
    parser.add_argument("--swaps", type=int, default=5, help="swaps per case and path")
    parser.add_argument("--build-budget", type=float, default=600)
    args = parser.parse_args()
    with django_bench("swap"):
        from campaigns.snapshot import redis_keys

        book = load_book(random.Random(42), args.line_items)
        print(f"book: {book.line_items:,} line items in {book.seconds:.1f} s", file=sys.stderr)
        cost = publish_timed(book.line_items, budget=args.build_budget)
        snapshot, keys = cost.snapshot, redis_keys()
        print(
            f"\nsnapshot: {len(snapshot.line_items):,} line items, "
            f"{len(snapshot.creatives):,} creatives, {cost.size / 1e6:.1f} MB; "
            f"publish_snapshot() {cost.total_s:.1f} s (database build {cost.build_s:.1f} s, "
            f"encode {cost.encode_s * 1000:.0f} ms, Redis {cost.publish_s * 1000:.0f} ms)\n"
        )
        print("Publishing (encode: parts and hashes; write: write_snapshot, Redis included)")
        table(
            ["version", "encode ms", "write ms", "MB", "KB written", "parts"],
            publish_side(snapshot, keys),
            text_columns=1,
        )
        rows = asyncio.run(serving_side(args, snapshot, keys))
        print(
            f"\nServing: one swap (median of {args.swaps}; stall: the worst), CPU ms of "
            "the process including the old index's retirement"
        )
        table(["changed", "asked", "took", "CPU ms", "wall ms", "longest stall ms"], rows, 3)
        print(
            "asked: patched = the store as it runs; full rebuild = the same store with its "
            "parts cache emptied and patching off (every swap before content-addressed parts, "
            "with today's slicing). took: the path the store took."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
