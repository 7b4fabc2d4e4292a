"""Live dashboard benchmark: the cost of one publisher tick as pages watch more campaigns.

Run: .venv/bin/python bench/live.py [--campaigns 500] [--runs 10]

It builds the console benchmark's data (bench/console.py: N campaigns of 10 line items,
pacing counters in Redis) in a temporary SQLite file and an embedded Redis, writes the
published figures of two serving processes, then times `reporting.live.publisher.
publish_live` (what the beat task runs every LIVE_EVERY_SECONDS) with nothing watched, the
ops page only, and the ops page plus 10, 100 and N watched campaigns: median wall-clock and
CPU milliseconds of this process (the database is in-process SQLite, so CPU includes the
queries), the queries and the messages sent. The cost grows with what is watched, never with
the number of pages open on it.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

from bench.common import django_bench  # noqa: E402
from bench.console import build  # noqa: E402


def serving_figures(process: int, requests: int) -> dict[str, object]:
    return {
        "started_at": time.time() - 60,
        "published_at": time.time(),
        "requests": [["v1", 200, requests], ["v1", 204, requests // 3], ["openrtb", 200, 10]],
        "gauges": {"snapshot_age_seconds": 5.0, "redis_outage": 0.0},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--campaigns", type=int, default=500)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    with django_bench("live"):
        from django.db import connection

        from campaigns.snapshot import redis_client, redis_keys
        from reporting.live.publisher import OPS, _key, campaign_watch, publish_live, watch

        _, ids = build(args.campaigns)
        client, keys = redis_client(), redis_keys()
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print(f"{'watched':28} {'median ms':>10} {'CPU ms':>7} {'queries':>8} {'messages':>9}")
        cases = [("nothing", []), ("ops page", [OPS])] + [
            (f"ops + {n} campaigns", [OPS, *(campaign_watch(c) for c in ids[:n])])
            for n in sorted({10, 100, args.campaigns})
            if n <= len(ids)
        ]
        for name, watched in cases:
            client.delete(_key("watched"))
            for item in watched:
                watch(item)
            times, cpu, sent, queries = [], [], 0, 0
            for run in range(args.runs + 1):
                for p in range(2):  # the serving processes publish between ticks
                    key = keys.serving_metrics(f"bench:{p}")
                    client.set(key, json.dumps(serving_figures(p, 1000 * (run + 1))), ex=30)
                counted = 0

                def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
                    nonlocal counted
                    counted += 1
                    return execute(sql, params, many, context)

                started, started_cpu = time.perf_counter(), time.process_time()
                with connection.execute_wrapper(count):
                    sent = publish_live()
                if run:  # the first run warms caches
                    times.append((time.perf_counter() - started) * 1000)
                    cpu.append((time.process_time() - started_cpu) * 1000)
                    queries = counted
            print(
                f"{name:28} {statistics.median(times):10.1f} {statistics.median(cpu):7.1f} "
                f"{queries:8d} {sent:9d}"
            )


if __name__ == "__main__":
    main()
