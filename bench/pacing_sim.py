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
import contextlib
import dataclasses
import io
import math
import multiprocessing
import os
import random
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

from bench.common import configure  # noqa: E402

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
HISTORY_NOISE = 0.04


@dataclass(frozen=True)
class Plan:
    """A campaign of the book: its budget is `share` of the day's requests at its bid."""

    label: str
    bid: str
    share: float
    tier: str = "price"
    mode: str = "even"
    countries: tuple[str, ...] = ()
    devices: tuple[int, ...] = ()
    sizes: tuple[str, ...] = ("300x250", "728x90")
    placements: tuple[int, ...] = ()  # indexes into PLACEMENTS
    dynamic_min: str | None = None
    lifetime_days: int | None = None  # a lifetime budget of this many days' budgets
    li_budget_share: float | None = None  # a second line item with a budget of its own
    note: str = ""


# Budgets are shares of the day's requests, so the book scales with --peak-qps/--minutes.
BOOK = [
    Plan("Sponsor US", "7.00", 0.08, tier="guaranteed", countries=("US",),
         note="guaranteed tier, US only"),
    Plan("Brand all", "9.00", 0.10, note="top bid, all traffic"),
    Plan("Frontloaded DE", "8.00", 0.04, mode="frontloaded", countries=("DE",)),
    Plan("Mobile", "7.50", 0.07, devices=(4,), note="phones only"),
    Plan("Leaderboard", "6.50", 0.06, sizes=("728x90",), note="728x90 only"),
    Plan("Article only", "6.00", 0.05, placements=(1,), note="one placement"),
    Plan("Dynamic bid", "8.50", 0.07, dynamic_min="4.00", note="dynamic down to 4.00"),
    Plan("Lifetime", "7.00", 0.06, lifetime_days=5, note="lifetime budget over 5 days"),
    Plan("Two lines", "8.00", 0.08, li_budget_share=0.03, note="a line item with its own budget"),
    Plan("ASAP", "4.50", 0.03, mode="asap", note="ASAP by choice"),
    Plan("Starved GB", "2.50", 0.12, countries=("GB",), note="low bid, too little traffic"),
]  # fmt: skip
HOUSE_BID = "0.50"


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


# -- environment ---------------------------------------------------------------------------


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


# -- the book ----------------------------------------------------------------------------------


@dataclass
class SimCampaign:
    plan: Plan
    campaign_id: int
    # run → the day's budget (a lifetime budget's share for today, by the controller's rule)
    budgets: dict[str, Decimal]
    hard_budget: dict[str, Decimal]  # run → the budget serving enforces in that run
    line_items: list[int] = field(default_factory=list)
    capped_line_item: tuple[int, Decimal] | None = None  # (id, its daily budget)


def expected_requests(args: argparse.Namespace) -> float:
    mean = sum(DIURNAL) / len(DIURNAL)
    return args.peak_qps * mean * args.minutes * 60


def build_book(args: argparse.Namespace, day_start: datetime) -> list[SimCampaign]:
    from django.core.files.base import ContentFile
    from PIL import Image

    from campaigns import services
    from campaigns.models import Advertiser, Placement, Publisher
    from creatives.models import Creative, ReviewStatus

    publisher = Publisher.objects.create(name="Sim publisher")
    placements = [
        Placement.objects.create(publisher=publisher, name=name, sizes=[s for s, _ in SIZES])
        for name, _ in PLACEMENTS
    ]
    requests_per_day = expected_requests(args)

    def creative(advertiser: Advertiser, size: str) -> Creative:
        w, h = (int(x) for x in size.split("x"))
        buf = io.BytesIO()
        Image.new("RGB", (w, h), (30, 80, 160)).save(buf, format="PNG")
        made = Creative(
            advertiser=advertiser, name=f"{advertiser.name} {size}",
            click_url="https://shop.example/landing",
            image=ContentFile(buf.getvalue(), name="banner.png"), status=ReviewStatus.APPROVED,
        )  # fmt: skip
        made.full_clean()
        made.save()
        return made

    out = []
    start = day_start - timedelta(days=10)
    for n, plan in enumerate([*BOOK, Plan("House", HOUSE_BID, 0.0, tier="house")]):
        advertiser = Advertiser.objects.create(name=f"Sim advertiser {n}: {plan.label}")
        bid = Decimal(plan.bid)
        if plan.label == "House":
            daily = Decimal("1000000")
        else:
            daily = (Decimal(plan.share * requests_per_day) * bid / 1000).quantize(Decimal("0.01"))
        fields: dict[str, Any] = {}
        budget = daily
        if plan.lifetime_days:
            fields["lifetime_budget"] = daily * plan.lifetime_days
            fields["end_at"] = day_start + timedelta(days=plan.lifetime_days)
            daily = daily * 2  # the lifetime budget's share binds, not the daily budget
        campaign = services.create_campaign(
            advertiser=advertiser, name=plan.label, start_at=start, daily_budget=daily,
            pacing_mode=plan.mode, priority_tier=plan.tier, **fields,
        )  # fmt: skip
        sim = SimCampaign(
            plan, campaign.pk, {"paced": budget, "naive": budget}, {"paced": budget, "naive": daily}
        )
        sizes = list(plan.sizes)
        line_specs: list[tuple[str, Decimal | None]] = [(plan.bid, None)]
        if plan.li_budget_share:
            capped = (Decimal(plan.li_budget_share * requests_per_day) * bid / 1000).quantize(
                Decimal("0.01")
            )
            line_specs = [(plan.bid, capped), (str(bid - Decimal("2.50")), None)]
        for li_bid, li_budget in line_specs:
            extra: dict[str, Any] = {}
            if plan.dynamic_min:
                extra = {"bid_strategy": "dynamic_down", "min_bid": Decimal(plan.dynamic_min)}
            li = services.create_line_item(
                campaign=campaign, name=f"{plan.label} {li_bid}", bid=Decimal(li_bid),
                sizes=sizes, countries=list(plan.countries), device_types=list(plan.devices),
                creatives=[creative(advertiser, s) for s in sizes],
                placements=[placements[i] for i in plan.placements],
                daily_budget=li_budget, **extra,
            )  # fmt: skip
            sim.line_items.append(li.pk)
            if li_budget is not None:
                sim.capped_line_item = (li.pk, li_budget)
        services.activate_campaign(campaign)
        if plan.label != "House":
            out.append(sim)
    return out


def seed_history(day_start: datetime, args: argparse.Namespace, rng: random.Random) -> None:
    """Seven past days of request counts per placement and hour, with the diurnal curve: what
    the controller learns the day's traffic shape from."""
    from campaigns.models import Placement
    from reporting.models import HourlyRollup

    per_hour = expected_requests(args) / sum(DIURNAL)
    rows = []
    for placement, (_, weight) in zip(Placement.objects.order_by("id"), PLACEMENTS, strict=True):
        for day in range(1, 8):
            for hour in range(HOURS):
                # the hour's requests as the live traffic brings them (the curve between hour
                # midpoints), so the learned shape is the shape the day will have
                n = per_hour * hour_volume(hour) * weight / 100
                rows.append(
                    HourlyRollup(
                        hour=day_start - timedelta(days=day) + timedelta(hours=hour),
                        placement_id=placement.pk, line_item_id=0, campaign_id=0,
                        advertiser_id=0,
                        requests=max(0, round(n * rng.gauss(1, HISTORY_NOISE))),
                    )
                )  # fmt: skip
    HourlyRollup.objects.bulk_create(rows)


# -- traffic -----------------------------------------------------------------------------------


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
    from serving.app import ServingApp, ServingConfig
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


# -- figures -----------------------------------------------------------------------------------


@dataclass
class Figures:
    spend: Decimal
    budget: Decimal
    # The largest (hour's spend - hour's schedule) / hour's schedule, signed, and the Poisson
    # noise of that hour (two standard deviations of its number of wins): what an open-loop
    # delivery would scatter by at this volume. A controller that corrects errors within the
    # hour does somewhat better; above 10 %, the 10 % bar says little about the controller.
    worst_hour: float | None
    hour_noise: float | None
    # The largest (spend so far - schedule so far) / schedule so far at an hour's end,
    # signed: how pacing is read in a report ("pacing at 104 %").
    worst_pacing: float | None
    stop_seconds: float | None  # exhaustion to the last served impression (wall)
    overspend: float

    @property
    def ratio(self) -> float:
        return float(self.spend / self.budget) if self.budget else 0.0


def figures(wins: list[Win], budget: Decimal, hard: Decimal, schedule: Any, mode: str) -> Figures:
    from campaigns.pacing.schedule import mode_fraction

    day_start = schedule.start.timestamp()
    hourly = [0] * HOURS
    counts = [0] * HOURS
    total = 0
    exhausted_at: float | None = None
    last = 0.0
    hard_nanos = int(hard * NANOS)
    for w in sorted(wins, key=lambda w: w.wall):
        hour = min(HOURS - 1, max(0, int((w.sim - day_start) // 3600)))
        hourly[hour] += w.cost
        counts[hour] += 1
        total += w.cost
        last = w.wall
        if exhausted_at is None and total >= hard_nanos:
            exhausted_at = w.wall
    b = int(budget * NANOS)
    worst_hour = noise = worst_pacing = None
    if mode != "asap" and b:
        fractions = [mode_fraction(mode, sum(schedule.shape[:h])) for h in range(HOURS + 1)]
        planned = [b * (fractions[h + 1] - fractions[h]) for h in range(HOURS)]
        deviations = [(hourly[h] - planned[h]) / planned[h] for h in range(HOURS)]
        h = max(range(HOURS), key=lambda h: abs(deviations[h]))
        worst_hour = deviations[h]
        noise = 2 / math.sqrt(counts[h]) if counts[h] else None
        cumulative, pacing = 0, []
        for h in range(HOURS):
            cumulative += hourly[h]
            pacing.append(cumulative / (b * fractions[h + 1]) - 1)
        worst_pacing = max(pacing, key=abs)
    spend = Decimal(total) / NANOS
    return Figures(
        spend=spend,
        budget=budget,
        worst_hour=worst_hour,
        hour_noise=noise,
        worst_pacing=worst_pacing,
        stop_seconds=(last - exhausted_at) if exhausted_at is not None else None,
        overspend=max(0.0, float((spend - hard) / hard)) if hard else 0.0,
    )


def pct(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "-"
    return f"{x * 100:+.1f} %" if signed else f"{x * 100:.1f} %"


def print_table(
    title: str, rows: list[tuple[str, str, Figures]], result: DayResult, args: argparse.Namespace
) -> None:
    offered, answered = sum(result.offered), sum(result.answered)
    print(f"\n{title}")
    print(
        f"  {answered:,} ad requests in {result.wall_seconds:.0f} s wall "
        f"({answered / max(1.0, result.wall_seconds):,.0f}/s; offered {offered:,}), "
        f"{result.filled:,} filled, {result.errors} errors"
    )
    if result.ticks:
        ms = ", ".join(f"{k} {v:.0f} ms" for k, v in result.controller_ms.items())
        print(f"  {result.ticks} controller ticks; each run of: {ms}")
    header = (
        f"  {'campaign':<20}{'mode':<12}{'budget':>9}{'spend':>10}{'of budget':>10}"
        f"{'worst hour':>12}{'(noise)':>9}{'worst pacing':>14}{'stop (s)':>10}{'overspend':>11}"
    )
    print(header)
    print("  " + "-" * (len(header) - 2))
    for label, mode, f in rows:
        stop = f"{f.stop_seconds:.3f}" if f.stop_seconds is not None else "-"
        noise = f"±{f.hour_noise * 100:.0f} %" if f.hour_noise is not None else "-"
        print(
            f"  {label:<20}{mode:<12}{f.budget:>9.2f}{f.spend:>10.2f}{pct(f.ratio):>10}"
            f"{pct(f.worst_hour, True):>12}{noise:>9}{pct(f.worst_pacing, True):>14}"
            f"{stop:>10}{pct(f.overspend):>11}"
        )


def seed_yesterday(
    sims: list[SimCampaign], campaigns: dict[int, Any], day_start: datetime, hours: float
) -> None:
    """Yesterday's counters as a paced day would have them `hours` before midnight: the
    campaigns have been live for days (the controller carries what it learnt across days).
    A new campaign's first hour is another matter: docs/pacing.md has those figures."""
    from campaigns.pacing.ledger import to_nanos
    from campaigns.pacing.services import days_left, schedule_for, spend_target
    from campaigns.snapshot import redis_client, redis_keys

    client, keys = redis_client(), redis_keys()
    at = day_start - timedelta(hours=hours)
    for s in sims:
        campaign = campaigns[s.campaign_id]
        sched = schedule_for(campaign, at)
        target = spend_target(campaign, Decimal(0), days_left(campaign, sched))
        # An ASAP campaign is seeded as far along as the traffic: in the paced market it does
        # not reach its budget (it bids below the paced campaigns and gets what they leave),
        # so it is still in the auction at night, setting the second price of those above.
        done = sched.traffic(at) if s.plan.mode == "asap" else sched.fraction(at)
        spent = {"s": int(to_nanos(target) * done)}
        if s.capped_line_item:
            li, li_budget = s.capped_line_item
            spent[f"s:{li}"] = int(to_nanos(li_budget) * done)
        client.hset(
            keys.spend(sched.day, campaign.pk), mapping={k: int(v) for k, v in spent.items()}
        )
        client.hset(keys.lifetime_spend(campaign.pk), mapping={k: int(v) for k, v in spent.items()})


def budget_today(campaign: Any, day_start: datetime) -> Decimal:
    """Today's budget by the controller's rule, after the run (the lifetime share counts
    what was spent before today)."""
    from campaigns.pacing.ledger import parse_counters, to_money
    from campaigns.pacing.services import days_left, schedule_for, spend_target
    from campaigns.snapshot import redis_client, redis_keys

    client, keys = redis_client(), redis_keys()
    sched = schedule_for(campaign, day_start)
    today = parse_counters(client.hgetall(keys.spend(sched.day, campaign.pk)))
    life = parse_counters(client.hgetall(keys.lifetime_spend(campaign.pk)))
    before = to_money(life.spend - today.spend)
    target = spend_target(campaign, before, days_left(campaign, sched))
    return target.quantize(Decimal("0.01"))


def reset_redis_and_day(day_start: datetime) -> None:
    """Between the two runs: no spend, pacing state or events left, no rollups of the day."""
    from django.conf import settings
    from django_redis import get_redis_connection

    from reporting.models import HourlyRollup

    client = get_redis_connection("default")
    prefix = settings.REDIS_KEY_PREFIX
    for pattern in ("spend:*", "exhausted:*", "pacing:*", "seen:*", "events"):
        keys = list(client.scan_iter(match=f"{prefix}{pattern}", count=1000))
        if keys:
            client.delete(*keys)
    HourlyRollup.objects.filter(hour__gte=day_start).delete()


def truth_check(sims: list[SimCampaign], result: DayResult, day_start: datetime) -> str:
    """The rollups (what is billed) against the sim's own count of wins and Redis."""
    from django.db.models import Sum

    from campaigns.pacing.ledger import parse_counters
    from campaigns.snapshot import redis_client, redis_keys
    from reporting.models import HourlyRollup

    ids = [s.campaign_id for s in sims]
    rolled = HourlyRollup.objects.filter(
        campaign_id__in=ids, hour__gte=day_start, hour__lt=day_start + timedelta(days=1)
    ).aggregate(s=Sum("spend"))["s"] or Decimal(0)
    won = Decimal(sum(w.cost for s in sims for w in result.wins[s.campaign_id])) / NANOS
    client, keys = redis_client(), redis_keys()
    day = day_start.strftime("%Y%m%d")
    counted = sum(parse_counters(client.hgetall(keys.spend(day, i))).spend for i in ids)
    return (
        f"  truth: rollups bill {rolled:.4f}, the simulator saw {won:.4f} won, "
        f"Redis counts {Decimal(counted) / NANOS:.4f}"
    )


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


def print_hours(sims: list[SimCampaign], result: DayResult, schedules: dict[int, Any]) -> None:
    """Each hour's spend as a percentage of its scheduled spend."""
    from campaigns.pacing.schedule import mode_fraction

    print("  spend per hour, % of the hour's schedule (traffic: requests served, % of the curve):")
    print("  " + " " * 16 + "".join(f"{h:>5}" for h in range(HOURS)))
    curve = [hour_volume(h) for h in range(HOURS)]
    mean = sum(result.answered) / sum(curve)
    print(
        f"  {'traffic':<16}"
        + "".join(f"{result.answered[h] / (mean * curve[h]) * 100:>5.0f}" for h in range(HOURS))
    )
    for s in sims:
        schedule, mode = schedules[s.campaign_id], s.plan.mode
        if mode == "asap":
            continue
        start = schedule.start.timestamp()
        hourly = [0] * HOURS
        for w in result.wins[s.campaign_id]:
            hourly[min(HOURS - 1, max(0, int((w.sim - start) // 3600)))] += w.cost
        fractions = [mode_fraction(mode, sum(schedule.shape[:h])) for h in range(HOURS + 1)]
        b = float(s.budgets[result.name]) * NANOS
        cells = [hourly[h] / (b * (fractions[h + 1] - fractions[h])) * 100 for h in range(HOURS)]
        print(f"  {s.plan.label[:16]:<16}" + "".join(f"{c:>5.0f}" for c in cells))


def summarise(
    sims: list[SimCampaign], results: dict[str, DayResult], schedules: dict[int, Any]
) -> None:
    """The targets, for the campaigns with enough traffic (they spent their whole budget in
    the naive run): spend within 3 % of the budget, delivery within 10 % of the schedule
    (read hour by hour as pacing, spend so far against schedule so far; and each hour on its
    own, beside that hour's noise), stop within 2 s, overspend under 1 %."""
    if "naive" not in results:
        return
    print("\nTARGETS (campaigns with enough traffic: the naive run spent their whole budget)")
    for name in ("paced", "naive"):
        result = results[name]
        enough, within3, paced10, hours10, hours_noise = 0, 0, 0, 0, 0
        stops: list[float] = []
        over: list[float] = []
        worst_ratio = worst_pacing = worst_hour = 0.0
        for s in sims:
            schedule, mode = schedules[s.campaign_id], s.plan.mode
            naive_wins = results["naive"].wins[s.campaign_id]
            naive = figures(naive_wins, s.budgets["naive"], s.hard_budget["naive"], schedule, mode)
            f = figures(
                result.wins[s.campaign_id], s.budgets[name], s.hard_budget[name], schedule, mode
            )
            if f.stop_seconds is not None:
                stops.append(f.stop_seconds)
            over.append(f.overspend)
            if naive.ratio < 0.99:
                continue
            enough += 1
            worst_ratio = max(worst_ratio, abs(f.ratio - 1))
            within3 += abs(f.ratio - 1) <= 0.03
            if f.worst_pacing is None or f.worst_hour is None:
                paced10 += 1  # ASAP: no schedule to keep
                hours10 += 1
                hours_noise += 1
                continue
            paced10 += abs(f.worst_pacing) <= 0.10
            hours10 += abs(f.worst_hour) <= 0.10
            hours_noise += abs(f.worst_hour) <= 0.10 + (f.hour_noise or 0)
            worst_pacing = max(worst_pacing, abs(f.worst_pacing))
            worst_hour = max(worst_hour, abs(f.worst_hour))
        print(
            f"  {name}: spend within 3 %: {within3}/{enough} (worst {worst_ratio * 100:.1f} %); "
            f"pacing within 10 % at every hour: {paced10}/{enough} "
            f"(worst {worst_pacing * 100:.1f} %); every hour within 10 %: {hours10}/{enough}, "
            f"within 10 % + its noise: {hours_noise}/{enough} (worst {worst_hour * 100:.1f} %);\n"
            f"  {' ' * len(name)}  stop after exhaustion: worst {max(stops, default=0):.3f} s "
            f"({len(stops)} budgets reached); overspend: worst {max(over) * 100:.2f} %"
        )


if __name__ == "__main__":
    main()
