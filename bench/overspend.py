"""Overspend at a tiny budget: a 1.00 daily budget at 2,000 ad requests/s over two serving
processes (issue 12 item 17: it spent 1.024, +2.4 %; the aim is under 1 %).

Each of two processes runs its own `serving.app.ServingApp` (own snapshot store, event
batches, Redis connection and running spend counts, as two granian workers have) and drives
it in process through raw ASGI calls, open loop, at half the rate each, on the same Redis
(the embedded one of `bin/run`, or REDIS_URL). One campaign, one line item bidding 5.00 over
a 4.99 floor: every win costs 0.005, so 200 wins spend the budget in about a tenth of a
second at full rate. After the run the campaign's day spend is read from Redis (what the
win charges added: the figure budgets stop on) and compared with the budget.

Run: .venv/bin/python bench/overspend.py [--rps 2000] [--seconds 2] [--runs 3]
Bounded: --runs x --seconds of traffic, 127.0.0.1 only, every key of the run deleted after.
"""

import argparse
import asyncio
import multiprocessing
import os
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

from bench.common import django_bench  # noqa: E402
from bench.pacing.day import asgi  # noqa: E402

BUDGET = Decimal("1.00")
PROCESSES = 2


def serve_process(env: dict[str, str], body: bytes, rps: float, seconds: float, go: Any) -> None:
    """One serving process: its own app, `rps` ad requests a second for `seconds`."""
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from serving.app import ServingApp

    async def run() -> tuple[int, int, float]:
        app = ServingApp.from_settings()
        await app.startup()
        start = go.get(timeout=60)
        tasks = []
        for n in range(int(rps * seconds)):
            delay = start + n / rps - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(asgi(app, "POST", "/v1/ad", body)))
        answers = await asyncio.gather(*tasks)
        late = time.time() - (start + seconds)
        await app.shutdown()
        return sum(1 for s, _ in answers if s == 200), len(answers), late

    filled, sent, late = asyncio.run(run())
    print(f"  process {os.getpid()}: {sent} requests ({late:.2f} s behind the schedule at the"
          f" end), {filled} filled", flush=True)  # fmt: skip


def one_run(rps: float, seconds: float) -> Decimal:
    from django.conf import settings
    from django.utils import timezone

    from campaigns.snapshot import publish_snapshot, redis_client
    from serving.keys import RedisKeys, local_day
    from tests.factories import make_campaign, make_line_item, make_placement

    placement = make_placement(floor=Decimal("4.99"))
    campaign = make_campaign(daily_budget=BUDGET)
    make_line_item(campaign, "5.00")
    publish_snapshot()
    body = (
        b'{"placement": "%s", "slots": [{"id": "a", "sizes": ["300x250"]}]}'
        % placement.key.encode()
    )
    env = {k: v for k, v in os.environ.items() if k.isupper()}
    context = multiprocessing.get_context("spawn")
    go = context.Queue()
    procs = [
        context.Process(target=serve_process, args=(env, body, rps / PROCESSES, seconds, go))
        for _ in range(PROCESSES)
    ]
    for proc in procs:
        proc.start()
    time.sleep(8)  # both processes started and holding the snapshot
    start = time.time() + 0.5
    for _ in procs:
        go.put(start)
    for proc in procs:
        proc.join(timeout=seconds + 60)
        if proc.is_alive():
            proc.kill()
    keys = RedisKeys(settings.REDIS_KEY_PREFIX)
    day = local_day(timezone.now().timestamp(), "UTC")
    raw = redis_client().hget(keys.spend(day, campaign.pk), "s")
    return Decimal(int(raw or 0)) / Decimal(1_000_000_000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rps", type=float, default=2000.0)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with django_bench("overspend"):
        spent = []
        for n in range(args.runs):
            print(f"run {n + 1}: {args.rps:g} requests/s over {PROCESSES} processes, "
                  f"{args.seconds:g} s, daily budget {BUDGET}", flush=True)  # fmt: skip
            value = one_run(args.rps, args.seconds)
            spent.append(value)
            over = (value - BUDGET) / BUDGET * 100
            print(f"  spent {value:.4f} of {BUDGET}: {over:+.2f} %", flush=True)
        worst = max(spent)
        print(f"worst of {len(spent)}: spent {worst:.4f}, "
              f"overspend {(worst - BUDGET) / BUDGET * 100:+.2f} % of the budget")  # fmt: skip


if __name__ == "__main__":
    main()
