"""One ingest batch under the microscope: wall time and CPU time, the statements it sends (how
many, of which kind, how long) and, with --profile, cProfile's top functions.

    DATABASE_URL=postgres://... .venv/bin/python bench/profile_ingest.py [--batch 5000]
        [--batches 4] [--profile] [--baseline]

Starts a redis-server of its own (as bench/ingest.py does) and writes `--batches` + 1 batches
of the event mix of bench/ingest.py (`entries`), all stamped with one hour, then ingests them
one full batch per call. The first batch creates the hour's rows and is not counted; the
others add to them (the steady state) and are timed, their statements counted and timed
(Django's CaptureQueriesContext: every statement through Django's connection) and, with
--profile, profiled. --baseline: without the measurement rollups (as bench/ingest.py's
baseline phase). Deletes its rows afterwards (bench/ingest.py's `clean`). Stops by itself.
"""

import argparse
import cProfile
import io
import os
import pstats
import random
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import postgres_bench


def fill(url: str, stream: str, count: int, seed: int = 1) -> int:
    """Write at least `count` entries of bench/ingest.py's mix; how many were written."""
    import redis

    from bench.ingest import entries

    client = redis.Redis.from_url(url)
    rng = random.Random(seed)
    ts = int(time.time() * 1000)
    written = 0
    pipe = client.pipeline(transaction=False)
    while written < count:
        for value in entries(rng, ts):
            pipe.xadd(stream, {"v": value})
            written += 1
        if len(pipe) >= 2000:
            pipe.execute()
    pipe.execute()
    return written


def statement_kind(sql: str) -> str:
    words = sql.split()
    head = " ".join(words[:3])
    for table in ("reporting_", "campaigns_"):
        at = sql.find(table)
        if at >= 0:
            return f"{words[0]} {sql[at:].split()[0].strip(chr(34))}"
    return head


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--batches", type=int, default=4, help="measured batches")
    parser.add_argument("--profile", action="store_true", help="cProfile the measured batches")
    parser.add_argument("--baseline", action="store_true", help="without the measurement rollups")
    args = parser.parse_args()
    with postgres_bench("profile-ingest", "bench/profile_ingest.py") as url:
        from django.conf import settings
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        import reporting.ingest as ingest
        from bench.ingest import clean, without_measurement
        from serving.keys import RedisKeys

        settings.REDIS_KEY_PREFIX = "bench-ingest-profile:"
        stream = RedisKeys(settings.REDIS_KEY_PREFIX).events
        clean()
        try:
            fill(url, stream, args.batch * (args.batches + 1))
            if args.baseline:
                without_measurement()
            ingest.ingest_events(batch_size=args.batch, max_batches=1)  # makes the rows
            profiler = cProfile.Profile() if args.profile else None
            read, seconds, cpu = 0, 0.0, 0.0
            kinds, spent = Counter[str](), defaultdict[str, float](float)
            for _ in range(args.batches):
                with CaptureQueriesContext(connection) as queries:
                    began, began_cpu = time.perf_counter(), time.process_time()
                    if profiler:
                        profiler.enable()
                    read += ingest.ingest_events(batch_size=args.batch, max_batches=1).read
                    if profiler:
                        profiler.disable()
                    seconds += time.perf_counter() - began
                    cpu += time.process_time() - began_cpu
                for q in queries.captured_queries:
                    kinds[statement_kind(q["sql"])] += 1
                    spent[statement_kind(q["sql"])] += float(q["time"])
        finally:
            clean()
    n = args.batches
    what = " without the measurement rollups" if args.baseline else ""
    print(f"{n} batches of {args.batch:,} entries{what}: {seconds / n * 1000:,.0f} ms a batch "
          f"({cpu / n * 1000:,.0f} ms of it this process's CPU), "
          f"{read / seconds:,.0f} entries/s{' (under cProfile)' if profiler else ''}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")  # fmt: skip
    print(
        f"statements a batch: {sum(kinds.values()) / n:,.0f}, "
        f"{sum(spent.values()) / n * 1000:,.0f} ms; the most frequent (a batch, ms a batch):"
    )
    for kind, count in kinds.most_common(15):
        print(f"  {count / n:>8,.1f} {spent[kind] / n * 1000:>7,.1f}  {kind}")
    if profiler:
        for order, lines in (("cumulative", 40), ("tottime", 25)):
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(lines)
            print(out.getvalue())


if __name__ == "__main__":
    main()
