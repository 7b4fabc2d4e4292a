"""The pacing simulator: one day in minutes against the real serving app and the real
controller, twice with the same traffic: paced, then naive (no pacing controller: every
campaign ASAP until its budget stops it). Prints per campaign, for both: spend against the
day's budget, the largest hourly deviation from the schedule, the time from budget
exhaustion to the last served impression, and overspend.

Run: .venv/bin/python bench/pacing_sim.py [--minutes 16] [--peak-qps 700] [--seed 7]

What is real: the serving app (`serving.app.ServingApp`, driven in-process through raw ASGI
calls: ad requests, then the impression of every decision), two instances of it with their
own snapshot store, event batches and Redis connections (two serving processes as far as
budgets are concerned), Redis, the database, the snapshot publisher, the event ingestion into
rollups, and the pacing controller and reconciliation (`campaigns.pacing.services`, the
bodies of the Celery tasks), run in a process of their own on the compressed clock.

The clock (docs/pacing.md): a `serving.clock.SimClock` maps wall time to the simulated day
(`--minutes` of wall time for 24 hours). Spend is charged on the simulated day and hour; the
controller is called with the simulated `now` every half wall second (a simulated 45 s at the
default speed: far coarser than production's every 2 s, so the figures are pessimistic);
serving re-reads rates and exhausted sets every quarter of a wall second. Budget stops are
measured in wall seconds. The paced day starts `--warmup-hours` into the day before, with
yesterday's counters on schedule (campaigns that have run for days), unmeasured.

Needs nothing running: with no REDIS_URL it starts the embedded Redis of `bin/run`; SQLite
in a temporary directory. About 2.2 * --minutes minutes in all.
"""

import argparse
import asyncio
import os
import random
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

from bench.common import configure  # noqa: E402
from bench.pacing.book import (  # noqa: E402
    budget_today,
    build_book,
    expected_requests,
    reset_redis_and_day,
    seed_history,
    seed_yesterday,
)
from bench.pacing.day import DayResult, run_day  # noqa: E402
from bench.pacing.figures import (  # noqa: E402
    figures,
    print_hours,
    print_table,
    summarise,
    truth_check,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=16.0, help="wall minutes per day")
    parser.add_argument("--peak-qps", type=float, default=700.0, help="ad requests/s at peak")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--warmup-hours",
        type=float,
        default=2.0,
        help="paced run: start this many hours into the day before, on schedule (0: cold start)",
    )
    parser.add_argument("--processes", type=int, default=2, help="serving app instances")
    parser.add_argument("--render", type=float, default=1.0, help="share of wins rendered")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--hours", action="store_true", help="print spend / schedule per hour")
    parser.add_argument("--trace", help="write each controller tick's state to this JSONL file")
    return parser.parse_args()


def setup_environment(tmp: Path) -> list[Any]:
    """SQLite in `tmp`, the embedded Redis unless REDIS_URL is set, Django set up, migrated."""
    started: list[Any] = []
    if not os.environ.get("REDIS_URL"):
        from adsplatform.launch import start_embedded_redis

        url, proc = start_embedded_redis(f"redis-pacing-sim-{os.getpid()}")
        os.environ["REDIS_URL"] = url
        started.append(proc)
    configure(tmp)
    os.environ["SERVING_PUBLIC_URL"] = "http://sim.test"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return started


def main() -> None:
    args = parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pacing-sim-"))
    procs = setup_environment(tmp)
    try:
        simulate(args)
    finally:
        from adsplatform.launch import stop as stop_procs

        stop_procs(procs)
        shutil.rmtree(tmp, ignore_errors=True)


def simulate(args: argparse.Namespace) -> None:
    from campaigns.models import Campaign, Placement
    from campaigns.pacing.services import schedule_for
    from campaigns.snapshot import publish_snapshot

    rng = random.Random(args.seed)
    day_start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    print(
        f"pacing simulator: {day_start:%Y-%m-%d} (UTC) in {args.minutes:g} wall minutes "
        f"(x{86400 / (args.minutes * 60):.0f}), peak {args.peak_qps:,.0f} ad requests/s, "
        f"{args.processes} serving processes, seed {args.seed}"
    )
    t0 = time.perf_counter()
    sims = build_book(args, day_start)
    seed_history(day_start, args, rng)
    publish_snapshot()
    keys = list(Placement.objects.order_by("id").values_list("key", flat=True))
    campaigns = {c.pk: c for c in Campaign.objects.select_related("advertiser")}
    schedules = {s.campaign_id: schedule_for(campaigns[s.campaign_id], day_start) for s in sims}
    print(
        f"  book: {len(sims)} campaigns + house, about {expected_requests(args):,.0f} "
        f"requests in the day; set up in {time.perf_counter() - t0:.1f} s"
    )
    runs = [("paced", True)] + ([] if args.skip_baseline else [("naive", False)])
    results: dict[str, DayResult] = {}
    for name, paced in runs:
        if name != "paced":
            reset_redis_and_day(day_start)
            publish_snapshot()
        warmup = args.warmup_hours if paced else 0.0
        if warmup:
            seed_yesterday(sims, campaigns, day_start, warmup)
        results[name] = asyncio.run(run_day(name, args, day_start, keys, paced, warmup))
        if paced:
            print(truth_check(sims, results[name], day_start))
            for s in sims:  # a lifetime budget's share for today counts the warm-up's spend
                s.budgets[name] = s.hard_budget[name] = budget_today(
                    campaigns[s.campaign_id], day_start
                )
    for name, _ in runs:
        result = results[name]
        rows = []
        for s in sims:
            mode = s.plan.mode
            f = figures(
                result.wins[s.campaign_id], s.budgets[name], s.hard_budget[name],
                schedules[s.campaign_id], mode,
            )  # fmt: skip
            rows.append((s.plan.label, mode, f))
            if s.capped_line_item:
                li, li_budget = s.capped_line_item
                f = figures(
                    result.line_wins[li], li_budget, li_budget, schedules[s.campaign_id], mode
                )
                rows.append(("  its capped line", mode, f))
        title = {
            "paced": "PACED: the controller on (even/frontloaded/ASAP as booked)",
            "naive": "NAIVE BASELINE: no pacing controller, every campaign ASAP to its budget",
        }[name]
        print_table(title, rows, result, args)
        if args.hours:
            print_hours(sims, result, schedules)
    summarise(sims, results, schedules)


if __name__ == "__main__":
    main()
