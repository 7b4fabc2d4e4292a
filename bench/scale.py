"""Several serving processes on one Redis (issue 17, part of `bench/scale.py`): decisions a
second per process, a buyer's observed QPS against its fleet-wide cap, and the overspend of a
small daily budget all processes share.

Each process runs its own `serving.app.ServingApp` (own snapshot, event batches, buyer pool,
QPS tokens and Redis connections, as separate serving hosts have) and drives it in process
through raw ASGI calls, open loop, at `--rps` ad requests a second each, from one common
instant. One external buyer, a real HTTP server on 127.0.0.1 in this process, capped at
`--cap` calls a second for the fleet and bidding under the floor (it is called on every
request its cap allows and never wins); one campaign with a `--budget` daily budget whose
line item bids 5.00 over a 4.99 floor (every win costs 0.005). After the run: the buyer's
calls per whole second against the cap, and the campaign's day spend in Redis against the
budget. Then (first, in fact) ingest entries/s and lag with 1, 2 and 4 ingest workers over 4
partitions (`bench/scale_ingest.py`; needs DATABASE_URL=postgres://..., skipped otherwise).
Not here yet: Redis Cluster.

Run: [DATABASE_URL=postgres://...] .venv/bin/python bench/scale.py [--processes 3] [--rps 100]
    [--cap 50] [--seconds 5] [--ingest-workers 1,2,4] [--ingest-entries 100000]
Bounded: at most 30 s of traffic, 127.0.0.1 only, the embedded Redis (or REDIS_URL) under a
key prefix of its own, deleted after; the ingest part on a redis-server of its own, at most
`--ingest-limit` seconds per worker count; the processes stop by themselves.
"""

import argparse
import asyncio
import multiprocessing
import os
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

from bench.common import django_bench  # noqa: E402
from bench.pacing.day import asgi  # noqa: E402

MAX_SECONDS = 30.0
WIN_COST = Decimal("0.005")  # a 5.00 CPM


def serve_process(env: dict[str, str], body: bytes, rps: float, seconds: float, go: Any,
                  out: Any) -> None:  # fmt: skip
    """One serving process: its own app, `rps` ad requests a second for `seconds`."""
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from serving.app import ServingApp

    async def run() -> tuple[int, int, float]:
        app = ServingApp.from_settings()
        await app.startup()
        out.put("ready")
        start = go.get(timeout=120)
        tasks = []
        for n in range(int(rps * seconds)):
            delay = start + n / rps - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(asgi(app, "POST", "/v1/ad", body)))
        answers = await asyncio.gather(*tasks)
        took = time.time() - start
        await app.shutdown()
        return sum(1 for s, _ in answers if s == 200), len(answers), took

    filled, sent, took = asyncio.run(run())
    out.put((os.getpid(), sent, filled, took))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--rps", type=float, default=100.0, help="ad requests/s per process")
    parser.add_argument("--cap", type=int, default=50, help="the buyer's fleet-wide QPS cap")
    parser.add_argument("--budget", type=Decimal, default=Decimal("0.50"))
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--ingest-workers", default="1,2,4", help='worker counts; "" skips')
    parser.add_argument("--ingest-entries", type=int, default=100_000, help="backlog to drain")
    parser.add_argument("--ingest-batch", type=int, default=5000)
    parser.add_argument("--ingest-limit", type=float, default=120.0, help="seconds per count")
    args = parser.parse_args()
    seconds = min(args.seconds, MAX_SECONDS)
    if args.ingest_workers:
        # Before django_bench points DATABASE_URL at its SQLite file.
        from bench.scale_ingest import run as run_ingest

        counts = tuple(int(n) for n in args.ingest_workers.split(","))
        run_ingest(os.environ.get("DATABASE_URL", ""), counts, args.ingest_entries,
                   args.ingest_batch, args.ingest_limit)  # fmt: skip
    # Scripted traffic from one address without a user agent: invalid by design.
    os.environ["IVT_ENABLED"] = "false"
    os.environ["SERVING_FETCH_ALLOWED_NETWORKS"] = "127.0.0.0/8"
    with django_bench("scale"):
        run(args.processes, args.rps, args.cap, args.budget, seconds)


def run(processes: int, rps: float, cap: int, budget: Decimal, seconds: float) -> None:
    from django.conf import settings
    from django.utils import timezone

    from campaigns.snapshot import publish_snapshot, redis_client
    from serving.buyers.counters import parse_buyer_stats
    from serving.keys import RedisKeys, day_of, local_day
    from serving.models import Buyer
    from tests.factories import make_campaign, make_line_item, make_placement
    from tests.serving.buyer_server import Behaviour, LoopbackBuyer

    placement = make_placement(floor=Decimal("4.99"))
    campaign = make_campaign(daily_budget=budget)
    make_line_item(campaign, "5.00")
    body = (
        b'{"placement": "%s", "slots": [{"id": "a", "sizes": ["300x250"]}], "tmax": 500}'
        % placement.key.encode()
    )
    with LoopbackBuyer(Behaviour(bid={"price": "1.00"})) as buyer:
        Buyer.objects.create(name="capped", endpoint=buyer.endpoint, timeout_ms=300,
                             currency="USD", qps_cap=cap)  # fmt: skip
        publish_snapshot()
        env = {k: v for k, v in os.environ.items() if k.isupper()}
        context = multiprocessing.get_context("spawn")
        go, out = context.Queue(), context.Queue()
        procs = [
            context.Process(target=serve_process, args=(env, body, rps, seconds, go, out))
            for _ in range(processes)
        ]
        for proc in procs:
            proc.start()
        for _ in procs:
            out.get(timeout=120)  # each has its snapshot
        start = float(int(time.time()) + 1)
        for _ in procs:
            go.put(start)
        results = [out.get(timeout=seconds + 120) for _ in procs]
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
        calls = Counter(int(r.at - start) for r in buyer.received() if r.at >= start)

    print(f"{processes} serving processes x {rps:g} ad requests/s for {seconds:g} s, one Redis")
    for pid, sent, filled, took in results:
        print(f"  process {pid}: {sent} requests in {took:.2f} s ({sent / took:.0f}/s), "
              f"{filled} filled")  # fmt: skip
    whole = [calls[s] for s in range(int(seconds))]
    offered = processes * rps
    print(f"buyer: cap {cap}/s for the fleet, {offered:g}/s offered; calls per second {whole}")
    mean = sum(whole) / len(whole) if whole else 0.0
    worst = max(whole, default=0)
    print(f"  mean {mean:.1f}/s ({(mean - cap) / cap * 100:+.1f} % of the cap), worst second "
          f"{worst} ({(worst - cap) / cap * 100:+.1f} %)")  # fmt: skip
    keys = RedisKeys(settings.REDIS_KEY_PREFIX)
    stats = parse_buyer_stats(redis_client().hgetall(keys.buyer_stats(day_of(time.time()))))
    outcomes = {k: v for k, v in next(iter(stats.values()), {}).items() if "latency" not in k}
    print(f"  outcomes (fleet, as last flushed: the final second may be missing): {outcomes}")
    day = local_day(timezone.now().timestamp(), "UTC")
    raw = redis_client().hget(keys.spend(day, campaign.pk), "s")
    spent = Decimal(int(raw or 0)) / Decimal(1_000_000_000)
    print(
        f"budget: {budget} daily shared by all ({int(budget / WIN_COST)} wins); spent "
        f"{spent:.4f}: {(spent - budget) / budget * 100:+.2f} % of the budget"
    )


if __name__ == "__main__":
    main()
