"""The simulator's traffic and its simulated day: the diurnal curve, request bodies, raw
ASGI calls into the serving apps, and the controller and ingestion workers on the compressed
clock."""

import argparse
import asyncio
import contextlib
import dataclasses
import math
import multiprocessing
import os
import random
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
NANOS = 1_000_000_000


HOURS = 24


# Requests per hour, relative: a news-and-video network across a few time zones, quietest
# at 04:00 (a third of the peak), a morning ramp, a lunch peak and an evening plateau.
DIURNAL = [0.42, 0.37, 0.34, 0.33, 0.34, 0.40, 0.52, 0.68, 0.82, 0.90, 0.95, 0.98,
           1.00, 0.97, 0.93, 0.90, 0.89, 0.91, 0.95, 0.97, 0.92, 0.80, 0.64, 0.50]  # fmt: skip


PLACEMENTS = [("Home top", 30), ("Article", 40), ("Video page", 20), ("App feed", 10)]


SIZES = [("300x250", 60), ("728x90", 40)]


COUNTRIES = [("US", 50), ("DE", 20), ("GB", 15), ("FR", 15)]


DEVICES = [(2, 50), (4, 40), (5, 10)]  # desktop, phone, tablet (OpenRTB device types)


CONCURRENCY = 48


# The day runs a few hundred times faster than real time: the controller ticks and serving
# re-reads its rates more often than in production (2 s and 1 s), to keep some of their
# reaction time in proportion. Still hundreds of times coarser in simulated time.
CONTROLLER_EVERY = 0.5  # wall seconds between controller ticks


REFRESH_EVERY = 0.25  # serving's reads of rates and exhausted sets


# Rolled up in bigger batches than production's 5 s: ingestion's cost is per batch row, and
# the machine has two cores to share between serving, the controller and it.
INGEST_EVERY = 10.0


RECONCILE_EVERY = 5.0


def intensity(sim_hour: float) -> float:
    """Requests per second relative to the peak at a simulated time: the hourly curve,
    interpolated between hour midpoints (real traffic has no steps)."""
    x = sim_hour - 0.5
    lo = math.floor(x)
    t = x - lo
    return DIURNAL[lo % HOURS] * (1 - t) + DIURNAL[(lo + 1) % HOURS] * t


def hour_volume(hour: int) -> float:
    """The mean of `intensity` over a simulated hour (its requests, relative)."""
    return sum(intensity(hour + (m + 0.5) / 60) for m in range(60)) / 60


def weighted(rng: random.Random, table: list[tuple[Any, int]]) -> Any:
    return rng.choices([k for k, _ in table], [w for _, w in table])[0]


def request_bodies(keys: list[str], rng: random.Random, n: int = 2000) -> list[bytes]:
    import msgspec

    bodies = []
    for _ in range(n):
        placement = rng.choices(keys, [w for _, w in PLACEMENTS])[0]
        bodies.append(
            msgspec.json.encode(
                {
                    "placement": placement,
                    "slots": [{"id": "s", "sizes": [weighted(rng, SIZES)]}],
                    "device": {
                        "ua": "Mozilla/5.0 (sim)",
                        "ip": f"198.51.100.{rng.randint(1, 254)}",
                        "devicetype": weighted(rng, DEVICES),
                        "geo": {"country": weighted(rng, COUNTRIES)},
                    },
                }
            )
        )
    return bodies


Message = MutableMapping[str, Any]


App = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]


async def asgi(app: App, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    """One request straight into an ASGI app (no HTTP client in between: less overhead)."""
    scope = {
        "type": "http", "method": method, "path": path, "raw_path": path.encode(),
        "query_string": b"", "headers": [(b"content-type", b"application/json")],
        "client": ("198.51.100.7", 40000), "server": ("sim.test", 80), "scheme": "http",
        "http_version": "1.1",
    }  # fmt: skip
    sent = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


@dataclass
class Win:
    wall: float  # when the simulator saw the decision
    sim: float  # the simulated moment then: what the hour figures are binned by
    cost: int  # nanos


@dataclass
class DayResult:
    name: str
    wins: dict[int, list[Win]] = field(default_factory=lambda: defaultdict(list))
    line_wins: dict[int, list[Win]] = field(default_factory=lambda: defaultdict(list))
    offered: list[int] = field(default_factory=lambda: [0] * HOURS)
    answered: list[int] = field(default_factory=lambda: [0] * HOURS)
    filled: int = 0
    errors: int = 0
    wall_seconds: float = 0.0
    ticks: int = 0
    controller_ms: dict[str, float] = field(default_factory=dict)  # ms per run of each job


async def run_day(
    name: str,
    args: argparse.Namespace,
    day_start: datetime,
    keys: list[str],
    paced: bool,
    warmup: float = 0.0,
) -> DayResult:
    """One simulated day (after `warmup` hours of the day before, not measured)."""
    import msgspec
    from django.conf import settings

    from serving import clock
    from serving.app import ServingApp
    from serving.config import ServingConfig
    from serving.tokens import TokenSigner

    rng = random.Random(args.seed)
    bodies = request_bodies(keys, rng)
    signer = TokenSigner(settings.SERVING_SIGNING_KEY)
    spawn = multiprocessing.get_context("spawn")
    stop, stats, ready, go = spawn.Event(), spawn.Queue(), spawn.Queue(), spawn.Queue()
    if args.trace:
        os.environ["PACING_SIM_TRACE"] = args.trace
    roles = ["controller", "ingest"] if paced else ["ingest"]
    first = day_start.timestamp() - warmup * 3600
    day_end = day_start.timestamp() + 86400
    workers = [
        spawn.Process(
            target=worker_loop,
            args=(role, dict(os.environ), first, day_end, stop, stats, ready, go),
        )
        for role in roles
    ]
    for worker in workers:
        worker.start()
    for _ in workers:  # set up, and the controller's first rates written
        await asyncio.to_thread(ready.get, True, 120)
    config = dataclasses.replace(ServingConfig.from_settings(), refresh_interval=REFRESH_EVERY)
    apps = [ServingApp(config) for _ in range(args.processes)]
    for app in apps:
        await app.startup()  # reads those rates
    speed = 86400 / (args.minutes * 60)
    # A whole second: tokens carry whole seconds, and the charge of a win issued at the
    # day's first wall second must map to the day, not to the simulated minutes before it.
    start_wall = float(math.ceil(time.time()) + 1)
    sim_clock = clock.SimClock(start_wall, first, speed)
    clock.install(sim_clock)
    for _ in workers:
        go.put((start_wall, speed))
    result = DayResult(name)
    while time.time() < start_wall:
        await asyncio.sleep(0.01)
    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def one(n: int, hour: int | None) -> None:
        try:
            app = apps[n % len(apps)]
            status, body = await asgi(app, "POST", "/v1/ad", bodies[n % len(bodies)])
            if hour is not None:
                result.answered[hour] += 1
            if status != 200:
                if status != 204:
                    result.errors += 1
                return
            wall = time.time()
            for d in msgspec.json.decode(body)["decisions"]:
                result.filled += hour is not None
                if "line_item" not in d:
                    continue
                url = d["impression_url"]
                token = signer.verify(url.rsplit("/", 1)[1], "imp")
                # The day serving charged it to is that of the token's issue time, in whole
                # seconds; its hour is read from the moment the decision came back: a wall
                # second is minutes of simulated time, and binning by whole seconds would
                # give alternate hours one second more than the others at some speeds.
                charged = sim_clock.of_wall(token.issued_at)
                if charged >= day_end:
                    continue  # charged to the next day
                if charged >= day_start.timestamp():  # not the warm-up
                    win = Win(wall, sim_clock.of_wall(wall), token.cpm_micros)
                    result.wins[token.campaign_id].append(win)
                    result.line_wins[token.line_item_id].append(win)
                if args.render >= 1 or rng.random() < args.render:
                    await asgi(app, "GET", "/v1/imp/" + url.rsplit("/", 1)[1])
        except Exception:
            result.errors += 1
        finally:
            semaphore.release()

    owed = 0.0
    last = time.time()
    n = 0
    tasks: set[asyncio.Task[None]] = set()
    started = time.time()
    while True:
        now = time.time()
        sim_now = sim_clock.of_wall(now)
        if sim_now >= day_end:
            break
        into = (sim_now - day_start.timestamp()) / 3600  # hours into the day; < 0: warm-up
        hour = min(HOURS - 1, int(into)) if into >= 0 else None
        owed += args.peak_qps * intensity(into % HOURS) * (now - last)
        last = now
        while owed >= 1:
            owed -= 1
            if hour is not None:
                result.offered[hour] += 1
            await semaphore.acquire()
            task = asyncio.get_running_loop().create_task(one(n, hour))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
        await asyncio.sleep(0.004)
    if tasks:
        await asyncio.wait(tasks)
    result.wall_seconds = time.time() - started
    for app in apps:
        await app.shutdown()
    clock.install(None)
    stop.set()
    for worker in workers:
        worker.join(timeout=120)
        with contextlib.suppress(Exception):
            _, runs, ms = stats.get(timeout=5)
            result.ticks = max(result.ticks, runs.get("pacing", 0))
            result.controller_ms.update(ms)
    return result


def traced(run: Callable[[datetime], Any], path: str) -> Callable[[datetime], Any]:
    """`run_pacing`, then its states and rates appended to a JSONL file."""
    import json

    from campaigns.pacing.services import ledger

    def tick(at: datetime) -> Any:
        out = run(at)
        led = ledger()
        rates, multipliers = led.read_rates()
        line = {"at": at.isoformat(), "states": led.read_states(), "rates": rates,
                "multipliers": multipliers}  # fmt: skip
        with open(path, "a") as f:
            f.write(json.dumps(line) + "\n")
        return out

    return tick


def worker_loop(
    role: str,
    env: dict[str, str],
    start_sim: float,
    end_sim: float,
    stop: Any,
    stats: Any,
    ready: Any,
    go: Any,
) -> None:
    """The Celery tasks' bodies on the simulated clock, in a process of their own as a worker
    would run them: role "controller", a pacing tick every half wall second and a
    reconciliation every 5 s; role "ingest", the event stream rolled up every 10 s. Until
    the day ends."""
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from campaigns.pacing.services import reconcile_spend, run_pacing
    from reporting.ingest import ingest_events
    from serving import clock

    if role == "controller":
        # Two ticks before any traffic: the rates serving starts with.
        first = datetime.fromtimestamp(start_sim, UTC)
        reconcile_spend(first)
        run_pacing(first)
        run_pacing(first)
    ready.put(role)
    start_wall, speed = go.get(timeout=120)
    sim_clock = clock.SimClock(start_wall, start_sim, speed)
    clock.install(sim_clock)
    if role == "controller":
        tick: Callable[[datetime], Any] = run_pacing
        if os.environ.get("PACING_SIM_TRACE"):
            tick = traced(run_pacing, os.environ["PACING_SIM_TRACE"])
        jobs: list[tuple[str, float, Callable[[datetime], Any]]] = [
            ("pacing", CONTROLLER_EVERY, tick),
            ("reconcile", RECONCILE_EVERY, reconcile_spend),
        ]
    else:
        jobs = [("ingest", INGEST_EVERY, lambda at: ingest_events())]
    due = dict.fromkeys((name for name, _, _ in jobs), time.time())
    spent = dict.fromkeys(due, 0.0)
    runs = dict.fromkeys(due, 0)
    while not stop.is_set():
        now = time.time()
        sim_now = sim_clock.of_wall(now)
        if sim_now >= end_sim:
            break
        at = datetime.fromtimestamp(max(sim_now, start_sim), UTC)
        for name, every, work in jobs:
            if now >= due[name]:
                t0 = time.perf_counter()
                work(at)
                spent[name] += time.perf_counter() - t0
                runs[name] += 1
                due[name] = now + every
        time.sleep(max(0.0, min(due.values()) - time.time()))
    if role == "ingest":
        ingest_events()
    stats.put((role, runs, {k: spent[k] / max(1, runs[k]) * 1000 for k in spent}))
