"""Where a serving request's CPU goes: the serving app driven in-process, under cProfile.

Run: .venv/bin/python bench/profile_serving.py [--line-items 10000] [--requests 3000]
     [--door v1|openrtb] [--httpx] [--sort tottime|cumulative] [--top 40] [--model 50000]

Same book, same request mix and the same Redis setup as `bench/serving.py` (embedded Redis
unless REDIS_URL is set, a temporary SQLite file, a key prefix of its own, deleted at the
end). The ASGI app (`serving.app.ServingApp`) is called directly with a minimal scope, one
request at a time, so the profile holds the app and nothing of a server or client; with
`--httpx` the requests go through `httpx.ASGITransport` instead (slower: the client's cost
is in the profile too). `--concurrency` requests are in flight at once (32 by default), as
in a loaded server, so Redis batches hold many requests' commands; `--rate R` starts them
on a schedule instead (open loop, as at a fixed offered load). It prints the CPU time
per request without the profiler first, then the profile. `--model N` promotes a pCTR model
of N random weights first, as the training would (docs/learning.md), so that serving prices
the book's CPC line items with it.

CPU time moves with whatever else the machine runs. For a figure that does not, run it under
callgrind, which counts the instructions executed (the same on a busy machine as on a quiet
one) and only while the measured requests run:
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=/tmp/cg.out \
        .venv/bin/python bench/profile_serving.py --instructions --line-items 2000 --requests 1000
It prints the instructions per request (from callgrind_control) and skips the profile.
"""

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

from bench.book import RequestMix, load_book, tc_strings  # noqa: E402
from bench.common import django_bench, install_model  # noqa: E402


async def drive(
    app: Any, path: str, bodies: list[bytes], n: int, use_httpx: bool, concurrency: int = 1
) -> list[int]:
    """n requests, `concurrency` at a time (as a server interleaves its connections)."""
    if concurrency > 1:
        share = n // concurrency
        parts = await asyncio.gather(
            *(
                drive(app, path, bodies[k::concurrency], share, use_httpx)
                for k in range(concurrency)
            )
        )
        return [s for part in parts for s in part]
    statuses: list[int] = []
    if use_httpx:
        import httpx

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for i in range(n):
                r = await client.post(path, content=bodies[i % len(bodies)],
                                      headers={"content-type": "application/json"})  # fmt: skip
                statuses.append(r.status_code)
        return statuses
    for i in range(n):
        body = bodies[i % len(bodies)]
        scope = {"type": "http", "method": "POST", "path": path, "query_string": b"",
                 "headers": [(b"content-type", b"application/json")],
                 "client": ("127.0.0.1", 40000)}  # fmt: skip
        sent: list[int] = []

        async def receive(body: bytes = body) -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any], sent: list[int] = sent) -> None:
            if message["type"] == "http.response.start":
                sent.append(message["status"])

        await app(scope, receive, send)
        statuses.append(sent[0] if sent else 0)
    return statuses


async def paced(app: Any, path: str, bodies: list[bytes], n: int, rate: float) -> list[int]:
    """n requests started on a fixed schedule (open loop), each its own task."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    tasks = []
    for i in range(n):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(loop.create_task(drive(app, path, [bodies[i % len(bodies)]], 1, False)))
    return [s for part in await asyncio.gather(*tasks) for s in part]


async def _instructions(run: Any, n: int) -> float:
    """Instructions per request of `run(n)`, counted by the callgrind this process runs under."""
    import re
    import subprocess

    def control(*flags: str) -> str:
        command = ["callgrind_control", *flags, str(os.getpid())]
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout

    control("--zero")
    control("--instr=on")
    await run(n)
    await asyncio.sleep(0.2)  # the last batch's reply read
    counts = control("-e")  # per thread: "Th 1  122,539,741"
    control("--instr=off")
    threads = re.findall(r"Th\s+\d+\s+([\d,]+)", counts)
    if not threads:
        raise SystemExit("--instructions needs the process to run under valgrind --tool=callgrind")
    return sum(int(t.replace(",", "")) for t in threads) / n


def _redis_cpu() -> float:
    """CPU seconds the Redis server has used (user + system), from INFO cpu."""
    from django.conf import settings
    from redis import Redis

    info = Redis.from_url(settings.REDIS_URL).info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def profile(args: argparse.Namespace, bodies: list[bytes]) -> None:
    from serving.app import ServingApp

    app = ServingApp.from_settings()
    await app.startup()
    path = "/v1/ad" if args.door == "v1" else "/openrtb2/auction"
    try:
        c = args.concurrency

        async def run(n: int) -> list[int]:
            if args.rate:
                return await paced(app, path, bodies, n, args.rate)
            return await drive(app, path, bodies, n, args.httpx, c)

        await run(500)  # warm caches (UA, TC strings)
        await asyncio.sleep(0.5)  # the warm-up's batches flushed
        if args.instructions:
            per_request = await _instructions(run, args.requests)
            print(f"{path}: {per_request:,.0f} instructions per request (callgrind; the app, "
                  "its event loop and Redis client, not the Redis server)")  # fmt: skip
            return
        redis_before = _redis_cpu()
        t, cpu = time.perf_counter(), time.process_time()
        statuses = await run(args.requests)
        n = len(statuses)
        wall, cpu = (time.perf_counter() - t) / n, (time.process_time() - cpu) / n
        await asyncio.sleep(0.5)  # the last batch flushed
        redis_cpu = (_redis_cpu() - redis_before) / n
        counts = {s: statuses.count(s) for s in sorted(set(statuses))}
        how = f"{args.rate:,.0f}/s on a schedule" if args.rate else f"{c} at a time"
        print(f"{path}: {cpu * 1e6:,.0f} µs of CPU per request ({wall * 1e6:,.0f} µs wall) "
              f"without the profiler; {n} requests, {how}; statuses {counts}")  # fmt: skip
        print(f"the Redis server's CPU per request: {redis_cpu * 1e6:,.0f} µs "
              "(INFO cpu, the whole server: alone on it only with a private Redis)")  # fmt: skip
        profiler = cProfile.Profile()
        profiler.enable()
        await run(args.requests)
        profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.strip_dirs().sort_stats(args.sort).print_stats(args.top)
        print(out.getvalue())
    finally:
        await app.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--line-items", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--door", choices=["v1", "openrtb"], default="v1")
    parser.add_argument("--httpx", action="store_true")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument(
        "--rate",
        type=float,
        default=0,
        help="start requests on a schedule at this rate instead (open loop)",
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count instructions per request (run under callgrind: see above)",
    )
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--model", type=int, default=0, help="a live pCTR model of N weights")
    args = parser.parse_args()
    if args.instructions:  # callgrind slows everything about 50 times: no Redis timeout may fire
        os.environ.setdefault("SERVING_REDIS_TIMEOUT_SECONDS", "60")
    with django_bench("profile"):
        from django.conf import settings

        from campaigns.snapshot import publish_snapshot

        book = load_book(random.Random(42), args.line_items)
        if args.model:
            install_model(args.model)
        publish_snapshot()
        mix = RequestMix(book, tc_strings(settings.GVL_VENDOR_ID), random.Random(7))
        make = mix.v1 if args.door == "v1" else mix.openrtb
        bodies = [make().encode() for _ in range(1000)]
        asyncio.run(profile(args, bodies))
    return 0


if __name__ == "__main__":
    sys.exit(main())
