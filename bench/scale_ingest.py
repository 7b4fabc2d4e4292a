"""Ingest workers over a partitioned event stream (issue 17's ingest part of `bench/scale.py`):
entries/s and lag with 1, 2 and 4 workers over 4 partitions.

For each worker count, on a fresh key prefix of a redis-server of its own (as bench/ingest.py
does) and the migrated Postgres of DATABASE_URL: `--entries` entries of bench/ingest.py's
event mix are written first, spread over the 4 partitions by decision id as serving spreads
them (`serving.events.EventSink.stream_for`); then the workers, separate processes, start at
one instant and roll them up, each its share of the partitions (partition p to worker
p mod N, as Celery hands beat's per-partition tasks to its workers), one batch per call of
`reporting.ingest.ingest_events(partition=p)`. A backlog drained, rather than a sustained
rate, so that the figure is what the workers can do and not the producer's rate: entries/s
is the backlog over the time to drain it (the lag: how long the workers took to catch up),
and each worker's entries/s is its entries over its time spent ingesting. Rows deleted
afterwards (bench/ingest.py's `clean`); stops by itself.
"""

import multiprocessing
import os
import random
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PARTITIONS = 4


def _django(env: dict[str, str]) -> None:
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def fill(url: str, streams: tuple[str, ...], count: int) -> int:
    """Write about `count` entries of bench/ingest.py's mix over the partitions; how many."""
    import redis

    from bench.ingest import entries

    client = redis.Redis.from_url(url)
    rng = random.Random(17)
    ts = int(time.time() * 1000)
    written = 0
    pipe = client.pipeline(transaction=False)
    while written < count:
        values = entries(rng, ts)
        # The partition of the request's decision id, as serving picks it.
        rid = values[0].split(b'"d":"', 1)[1][:22]
        stream = streams[zlib.crc32(rid) % len(streams)]
        for value in values:
            pipe.xadd(stream, {"v": value})
        written += len(values)
        if len(pipe) >= 2000:
            pipe.execute()
    pipe.execute()
    return written


def work(env: dict[str, str], mine: list[int], batch: int, go: Any, done: Any, out: Any) -> None:
    """One ingest worker: its partitions, a batch each in turn, until the backlog is gone."""
    _django(env)
    from reporting.ingest import ingest_events

    out.put("ready")
    start = go.get(timeout=120)
    time.sleep(max(0.0, start - time.time()))
    read, busy = 0, 0.0
    while not done.is_set():
        idle = True
        for partition in mine:
            began = time.monotonic()
            got = ingest_events(batch_size=batch, max_batches=1, partition=partition).read
            if got:
                busy += time.monotonic() - began
                read += got
                idle = False
        if idle:
            time.sleep(0.02)
    out.put((os.getpid(), mine, read, busy))


def behind(client: Any, streams: tuple[str, ...], group: str) -> int:
    """Entries not rolled up yet, over every partition (never read, or read and pending)."""
    total = 0
    for stream in streams:
        info = {g["name"].decode(): g for g in client.xinfo_groups(stream)}.get(group)
        if info is None:
            total += client.xlen(stream)
        else:
            total += (info.get("lag") or 0) + info["pending"]
    return total


def clean(env: dict[str, str]) -> None:
    _django(env)
    from bench.ingest import clean as delete_bench_rows

    delete_bench_rows()


def run_workers(
    url: str, env: dict[str, str], workers: int, entries: int, batch: int, limit: float
) -> dict[str, Any]:
    """Fill a fresh prefix's partitions, drain them with `workers` processes; the figures."""
    import redis

    from serving.keys import RedisKeys

    prefix = f"bench-ingest-scale-{workers}:"
    streams = RedisKeys(prefix).event_streams(PARTITIONS)
    env = {**env, "REDIS_KEY_PREFIX": prefix, "EVENT_STREAM_PARTITIONS": str(PARTITIONS)}
    written = fill(url, streams, entries)
    client = redis.Redis.from_url(url)
    context = multiprocessing.get_context("spawn")
    go, out, done = context.Queue(), context.Queue(), context.Event()
    procs = [
        context.Process(
            target=work,
            args=(env, [p for p in range(PARTITIONS) if p % workers == n], batch, go, done, out),
        )
        for n in range(workers)
    ]
    for proc in procs:
        proc.start()
    try:
        for _ in procs:
            out.get(timeout=120)
        start = time.time() + 0.5
        for _ in procs:
            go.put(start)
        time.sleep(max(0.0, start - time.time()))
        left = written
        while time.time() - start < limit:
            time.sleep(0.1)
            left = behind(client, streams, "rollup")
            if left == 0:
                break
        took = time.time() - start
        done.set()
        results = [out.get(timeout=60) for _ in procs]
    finally:
        done.set()
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    return {"workers": workers, "written": written, "seconds": took, "left": left,
            "results": sorted(results, key=lambda r: r[1])}  # fmt: skip


def run(database: str, workers: tuple[int, ...], entries: int, batch: int, limit: float) -> None:
    """Print ingest entries/s and lag per worker count (needs a Postgres `database`)."""
    if not database.startswith("postgres"):
        print("ingest: skipped (needs DATABASE_URL=postgres://..., a migrated database: "
              "workers in separate processes write the rollups at once)")  # fmt: skip
        return
    sys.path.insert(0, str(ROOT))
    from tests.faults.services import PrivateRedis

    with tempfile.TemporaryDirectory(prefix="bench-scale-ingest-") as tmp:
        server = PrivateRedis(Path(tmp), appendonly=False)
        server.start()
        env = {"DATABASE_URL": database, "REDIS_URL": server.url, "LOG_LEVEL": "WARNING",
               "DJANGO_SETTINGS_MODULE": "adsplatform.settings"}  # fmt: skip
        context = multiprocessing.get_context("spawn")
        try:
            figures = []
            for n in workers:
                cleaner = context.Process(target=clean, args=(env,))
                cleaner.start()
                cleaner.join()
                figures.append(run_workers(server.url, env, n, entries, batch, limit))
        finally:
            cleaner = context.Process(target=clean, args=(env,))
            cleaner.start()
            cleaner.join()
            server.stop()
    print(f"ingest: a backlog of ~{entries:,} entries over {PARTITIONS} partitions drained by "
          f"N workers (separate processes), batches of {batch:,}; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")  # fmt: skip
    print(f"{'workers':>8}{'entries':>9}{'drained in':>12}{'entries/s':>11}{'speed-up':>10}"
          f"{'left':>7}  per worker: partitions, entries/s while ingesting")  # fmt: skip
    first = None
    for f in figures:
        rate = (f["written"] - f["left"]) / f["seconds"]
        first = first or rate
        each = ", ".join(
            f"{parts} {read / busy:,.0f}" if busy else f"{parts} -"
            for _, parts, read, busy in f["results"]
        )
        print(f"{f['workers']:>8}{f['written']:>9,}{f['seconds']:>11.1f}s{rate:>11,.0f}"
              f"{rate / first:>9.2f}x{f['left']:>7,}  {each}")  # fmt: skip
