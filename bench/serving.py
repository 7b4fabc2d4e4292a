"""Serving benchmark: /v1/ad and /openrtb2/auction on 10,000 live line items, against a raw
ASGI hello-world, at saturation and at fixed offered loads, with snapshot swaps, and the
snapshot's cost at 10,000 and 100,000 line items. One run prints everything side by side.

Run: .venv/bin/python bench/serving.py [--seconds 10] [--quick] [--skip-100k] [--model 50000]
`--model N` promotes a pCTR model of N random weights before the runs (as
`bench/profile_serving.py --model N` does), so every run serves with a model live.
See bench/README.md for what each phase measures and how to read it.
"""

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, sys.path[0] is bench/, where "serving" would name this file, not the app.
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

from bench.book import Book, RequestMix, check_consent, load_book, tc_strings  # noqa: E402
from bench.common import configure, install_model  # noqa: E402
from bench.serve import config  # noqa: E402
from bench.serve.config import (  # noqa: E402
    BIN,
    CONNECTIONS,
    FILL_CHECK,
    HELLO_APP,
    LOADS,
    N_BODIES,
    OPEN_WARMUP,
    SERVING_APP,
    SWAP_EVERY,
    UVICORN_FAST,
    log,
    set_workers,
)
from bench.serve.loads import (  # noqa: E402
    Load,
    Run,
)
from bench.serve.processes import (  # noqa: E402
    Redis,
    delete_prefix,
    free_port,
    spawned,
    stop,
)
from bench.serve.report import (  # noqa: E402
    Results,
    print_results,
)
from bench.serve.servers import (  # noqa: E402
    Server,
    request,
)
from bench.serve.snapshots import (  # noqa: E402
    BuildTooSlow,
    Republisher,
    SnapshotCost,
    publish_timed,
    stall_probe,
    wait_for_version,
)


def fill_check(port: int, path: str, bodies: list[str]) -> str:
    """Send bodies one at a time; status counts and the top no-fill reasons."""
    statuses: dict[int, int] = {}
    reasons: dict[str, int] = {}
    for body in bodies:
        response = request(port, "POST", path, body)
        statuses[response.status] = statuses.get(response.status, 0) + 1
        reason = response.getheader("x-no-fill-reason") or response.getheader("x-no-bid-reason")
        if response.status == 204:
            reasons[reason or "-"] = reasons.get(reason or "-", 0) + 1
    n = len(bodies)
    text = ", ".join(f"{s}: {c / n:.0%}" for s, c in sorted(statuses.items()))
    top = sorted(reasons.items(), key=lambda kv: -kv[1])[:3]
    return text + (f" (no fill: {', '.join(f'{r} {c}' for r, c in top)})" if top else "")


def caps_bite(redis: Redis, prefix: str) -> dict[str, Any]:
    """Frequency counters written during the run: how many reached the cap (3 a day)."""
    client = redis.client()
    users = fields = at_cap = top = 0
    for key in client.scan_iter(match=f"{prefix}fc:*", count=1000):
        counts = [int(v) for v in client.hgetall(key).values()]
        users += 1
        fields += len(counts)
        at_cap += sum(c >= 3 for c in counts)
        top = max([top, *counts])
    client.close()
    return {"users": users, "counters": fields, "at_cap": at_cap, "max": top}


def loss_reasons(redis: Redis, prefix: str, entries: int = 20000) -> dict[str, int]:
    """Why candidates were turned away, over the latest ad requests' events."""
    client = redis.client()
    reasons: dict[str, int] = {}
    for _, fields in client.xrevrange(f"{prefix}events", count=entries):
        for event in json.loads(fields[b"v"]):
            if event.get("t") == "loss":
                reasons[event["r"]] = reasons.get(event["r"], 0) + 1
            elif event.get("t") == "req":
                key = "req filled" if event.get("li") else "req unfilled"
                reasons[key] = reasons.get(key, 0) + 1
    client.close()
    return reasons


def trim_events(redis: Redis, prefix: str) -> None:
    client = redis.client()
    client.delete(f"{prefix}events")
    client.close()


def bench_server(
    kind: str,
    primary: bool,
    args: argparse.Namespace,
    tmp: Path,
    redis: Redis,
    load: Load,
    bodies: dict[str, list[str]],
    cost10k: SnapshotCost,
    res: Results,
    prefix: str,
) -> None:
    secs = args.seconds
    hello = Server(kind, HELLO_APP, free_port(), tmp / f"{kind}-hello.log").start()
    app: Server | None = None
    try:
        app = Server(kind, SERVING_APP, free_port(), tmp / f"{kind}-app.log").start()
        rss, _ = app.memory()
        loads = app.loads()
        res.startup[kind] = (app.ready_s, loads[0][1] if loads else 0.0, rss)
        if primary:
            cost10k.server_ready_s, cost10k.rss = app.ready_s, rss
            cost10k.load_ms = loads[0][1] if loads else 0.0
        for door, path in (("v1", "/v1/ad"), ("openrtb", "/openrtb2/auction")):
            res.fill[f"{kind} {path}"] = fill_check(app.port, path, bodies[door][:FILL_CHECK])
        trim_events(redis, prefix)
        sat: dict[str, Run] = {}
        cases: list[tuple[str, Server, str, str | None]] = [
            ("hello", hello, "/", None),
            ("/v1/ad", app, "/v1/ad", "v1"),
            ("/openrtb2/auction", app, "/openrtb2/auction", "openrtb"),
        ]
        for case, srv, path, which in cases:
            run = load.run(srv, case, path, bodies[which] if which else [], secs)
            sat[case] = run
            res.saturation.append(run)
            log(f"  {kind} {case} saturation: {run.rps:,.0f} req/s, p99 {run.p99:.1f} ms")
            trim_events(redis, prefix)
        fractions = LOADS if primary and not args.quick else (0.50,)
        ad_sat = sat["/v1/ad"].rps
        for fraction in fractions:
            # "p99 at half of the measured saturation" (issue 19).
            target = fraction == 0.50
            rate = round(half_load(ad_sat) if target else ad_sat * fraction)
            run = load.run(app, "/v1/ad", "/v1/ad", bodies["v1"], secs, rate=rate)
            run.load, run.target = f"{rate / ad_sat:.0%}", target
            base = load.run(hello, "hello", "/", [], secs, rate=rate) if not args.quick else None
            if base is not None:
                base.load = run.load
            res.fixed.append((run, base))
            log(f"  {kind} /v1/ad at {rate:,}/s: p50 {run.p50:.1f} ms, p99 {run.p99:.1f} ms")
            trim_events(redis, prefix)
        rtb_sat = sat["/openrtb2/auction"].rps
        rate = round(half_load(rtb_sat))
        run = load.run(app, "/openrtb2/auction", "/openrtb2/auction", bodies["openrtb"], secs,
                       rate=rate)  # fmt: skip
        run.load, run.target = f"{rate / rtb_sat:.0%}", True
        res.fixed.append((run, None))
        log(f"  {kind} /openrtb2/auction at {rate:,}/s: p99 {run.p99:.1f} ms")
        if primary:
            res.losses = loss_reasons(redis, prefix)
        trim_events(redis, prefix)
        if primary:
            # The same load as the half-load run, now with a new snapshot version every 2 s.
            calm = next(
                r for r, _ in res.fixed if r.server == kind and r.case == "/v1/ad" and r.target
            )
            rate = round(calm.offered)
            count = int((OPEN_WARMUP + secs) / SWAP_EVERY) + 1
            republisher = Republisher(cost10k.snapshot, count)
            before = len(app.loads())
            try:
                run = load.run(
                    app, "/v1/ad", "/v1/ad", bodies["v1"], secs, rate=rate,
                    on_start=lambda: republisher.every(SWAP_EVERY, first_after=0.2),
                    on_end=republisher.stop,
                )  # fmt: skip
            finally:
                republisher.stop()
            run.load, run.target = calm.load, True
            swaps = [ms for _, ms in app.loads()[before:]]
            res.swap.append((run, calm, swaps, len(republisher.published)))
            log(f"  {kind} swaps: {len(republisher.published)} published, {len(swaps)} "
                f"loaded, p99 {run.p99:.1f} ms (without: {calm.p99:.1f} ms)")  # fmt: skip
            trim_events(redis, prefix)
            res.caps = caps_bite(redis, prefix)
            wait_for_version(app, republisher.published[-1][0] if republisher.published else 0, 30)
            stall_probe(load, app, cost10k, swaps=1 if args.quick else 2)
            log(f"  {kind} stall probe: longest stall {cost10k.stall_ms:.1f} ms")
            cost10k.rss = cost10k.rss or app.memory()[0]
    finally:
        hello.stop()
        if app is not None:
            app.stop()


def scale_100k(
    args: argparse.Namespace, tmp: Path, load: Load, book: Book, rng: random.Random
) -> SnapshotCost:
    book = load_book(rng, 90_000, book)
    log(f"  100k book: +90,000 line items in {book.seconds:.1f} s; publishing…")
    cost = publish_timed(book.line_items, budget=args.build_budget)
    log(f"  100k snapshot: build {cost.build_s:.1f} s, {cost.size / 1e6:.1f} MB")
    app = Server("granian", SERVING_APP, free_port(), tmp / "granian-100k.log").start()
    try:
        loads = app.loads()
        cost.server_ready_s, cost.load_ms = app.ready_s, loads[-1][1] if loads else 0.0
        cost.rss, _ = app.memory()
        stall_probe(load, app, cost, swaps=1)
    finally:
        app.stop()
    return cost


def half_load(saturation: float) -> float:
    return saturation / 2


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), or the platform's processor name."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    import platform

    return platform.processor() or "unknown CPU"


def machine_line(load_before: float) -> str:
    one, five, _ = os.getloadavg()
    return (
        f"machine: {cpu_model()}, {os.cpu_count()} cores; load average before the run "
        f"{load_before:.2f}, after {one:.2f} (5 min {five:.2f}); commit {git_commit()}"
    )


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty", "--abbrev=10"],
            capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10, help="measured seconds per run")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 2,000 line items, 2 s runs, granian only, no 100k",
    )
    parser.add_argument("--skip-100k", action="store_true", help="no 100,000-item phase")
    parser.add_argument(
        "--build-budget", type=float, default=240,
        help="seconds a snapshot publish may take before it is interrupted (default 240)",
    )  # fmt: skip
    parser.add_argument("--line-items", type=int, default=None, help="book size (10,000)")
    parser.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto",
                        help="closed-loop runs: wrk when asked (auto: when on PATH); open-loop "
                        "runs always use bench/loadgen.py")  # fmt: skip
    parser.add_argument("--servers", default="granian,uvicorn")
    parser.add_argument("--workers", type=int, default=config.WORKERS,
                        help=f"server worker processes (default: one per core, {config.WORKERS}); "
                        "with 1, the server is pinned to CPU 0")  # fmt: skip
    parser.add_argument("--model", type=int, default=0, metavar="N",
                        help="promote a pCTR model of N random weights before the runs, so "
                        "serving prices the CPC line items with it (0: no model)")  # fmt: skip
    args = parser.parse_args()
    set_workers(args.workers)
    if args.quick:
        args.seconds = min(args.seconds, 2)
        args.skip_100k = True
        args.servers = "granian"
    n_items = args.line_items or (2000 if args.quick else 10_000)
    use_wrk = args.generator == "wrk" or (args.generator == "auto" and bool(shutil.which("wrk")))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setaffinity(0, {1})  # this process works alongside the load generator
    began = time.monotonic()
    args.load_before = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    redis: Redis | None = None
    prefix = ""
    try:
        redis = Redis.start(tmp)
        os.environ["REDIS_URL"] = redis.url
        prefix = configure(tmp)
        delete_prefix(redis, prefix)
        if not shutil.which("taskset"):
            pinning = "none"
        elif config.WORKERS == 1:
            pinning = "server on CPU 0, load generator, Redis and this script on CPU 1"
        else:
            pinning = (f"{config.WORKERS} server workers on all cores, load generator, Redis and "
                       "this script on CPU 1 (sharing it with a worker)")  # fmt: skip
        where = "embedded, on CPU 1" if redis.proc else redis.url
        generator = "wrk" if use_wrk else "bench/loadgen.py"
        log(
            f"serving benchmark: {n_items:,} line items, {args.seconds:g} s per run, "
            f"{CONNECTIONS} connections; pinning: {pinning}; Redis: {where}; closed-loop "
            f"generator: {generator}; uvicorn options: {UVICORN_FAST or 'asyncio + h11'}; "
            f"load average {args.load_before:.2f}"
        )
        log(machine_line(args.load_before))
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        rng = random.Random(42)
        book = load_book(rng, n_items)
        log(f"book: {book.line_items:,} line items loaded in {book.seconds:.1f} s; publishing…")
        if args.model:
            install_model(args.model)  # the snapshots published from here on carry it
            log(f"model: a live pCTR model of {args.model:,} weights")
        cost10k = publish_timed(book.line_items, budget=args.build_budget)
        log(f"snapshot: build {cost10k.build_s:.1f} s, encode {cost10k.encode_s:.2f} s, "
            f"{cost10k.size / 1e6:.1f} MB")  # fmt: skip
        res = Results(book=book, snapshots=[cost10k])
        vendor = settings.GVL_VENDOR_ID
        tc = tc_strings(vendor)
        res.consent = check_consent(tc, vendor)
        mix = RequestMix(book, tc, random.Random(7))
        bodies = {"v1": [mix.v1() for _ in range(N_BODIES)],
                  "openrtb": [mix.openrtb() for _ in range(N_BODIES)]}  # fmt: skip
        total = 2 * N_BODIES
        res.mix = {k: f"{v / total:.0%}" for k, v in mix.shares.items()}
        load = Load(tmp, redis, use_wrk)
        servers = [s for s in args.servers.split(",") if s]
        for n, kind in enumerate(servers):
            if not (BIN / kind).exists():
                log(f"{kind} is not installed: skipped")
                continue
            log(f"{kind}:")
            bench_server(kind, n == 0, args, tmp, redis, load, bodies, cost10k, res, prefix)
        if not args.skip_100k:
            log("100,000 line items:")
            try:
                res.snapshots.append(scale_100k(args, tmp, load, book, rng))
            except BuildTooSlow as exc:
                res.notes.append(f"100,000 line items: {exc}; no server figures at that size")
                log(f"  {exc}")
        print_results(res, args)
        log(machine_line(args.load_before))
        log(f"\ntotal time {time.monotonic() - began:.0f} s")
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        for proc in list(spawned):
            if redis is None or proc is not redis.proc:
                stop(proc)
        if redis is not None:
            with contextlib.suppress(Exception):
                delete_prefix(redis, prefix)
            if redis.proc is not None:
                stop(redis.proc)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
