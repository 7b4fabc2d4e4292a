"""Serving benchmark: granian and uvicorn, a hello-world baseline against POST /v1/ad.

Run: .venv/bin/python bench/serving.py [--seconds 10]. See bench/README.md.
"""

import argparse
import contextlib
import http.client
import importlib.util
import io
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, sys.path[0] is bench/, where "serving" would name this file, not the app.
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

from bench.common import configure  # noqa: E402

BIN = Path(sys.executable).parent
SIZES = {"300x250": (300, 250), "728x90": (728, 90), "160x600": (160, 600), "320x50": (320, 50)}
N_LINE_ITEMS, N_CAMPAIGNS, N_PLACEMENTS, N_BODIES = 10_000, 100, 20, 200
CONNECTIONS, WARMUP = 64, 2
CASES = (("hello", "bench.hello_asgi:app", "/"), ("/v1/ad", "adsplatform.asgi:application", ""))
WRK_SCRIPT = """\
local bodies = {BODIES}
local i = 0
if #bodies > 0 then
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  request = function()
    i = i % #bodies + 1
    return wrk.format(nil, nil, nil, bodies[i])
  end
end
done = function(s, latency, _)
  local e = s.errors
  io.write(string.format("BENCH %f %f %f %f %f\\n", s.requests, s.duration,
    latency:percentile(50), latency:percentile(99),
    e.status + e.connect + e.read + e.write + e.timeout))
end
"""
# uvicorn's fast loop and parser, when installed (otherwise it runs asyncio and h11).
UVICORN_FAST = [
    f"--{opt}={mod}"
    for opt, mod in (("loop", "uvloop"), ("http", "httptools"))
    if importlib.util.find_spec(mod)
]
RSS_RE = re.compile(r"^VmRSS:\s+(\d+) kB", re.MULTILINE)
_procs: list[subprocess.Popen[bytes]] = []


@dataclass
class Result:
    server: str
    case: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    rss_mib: float = 0.0


def load_data(rng: random.Random) -> list[str]:
    """Migrate, bulk-load the book, publish the snapshot; return ad request bodies."""
    import django

    django.setup()
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage
    from django.core.management import call_command
    from django.db import transaction
    from django.utils import timezone
    from PIL import Image

    from campaigns import models as cm
    from campaigns.snapshot import publish_snapshot, redis_client, redis_keys
    from creatives.models import Creative

    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    migrated = time.perf_counter()
    with transaction.atomic():
        images = {}
        for size, dims in SIZES.items():
            buf = io.BytesIO()
            Image.new("RGB", dims, "#1565c0").save(buf, format="PNG")
            name = f"creatives/bench-{size}.png"
            images[size] = default_storage.save(name, ContentFile(buf.getvalue()))
        advertisers = cm.Advertiser.objects.bulk_create(
            cm.Advertiser(name=f"Bench advertiser {i}") for i in range(10)
        )
        # bulk_create sends no post_save, so nothing enqueues a Celery publish: we publish below.
        [publisher] = cm.Publisher.objects.bulk_create([cm.Publisher(name="Bench publisher")])
        placements = cm.Placement.objects.bulk_create(
            cm.Placement(
                publisher=publisher,
                name=f"Placement {i}",
                sizes=rng.sample(list(SIZES), rng.randint(1, 3)),
                floor_cpm=Decimal(rng.choice([0, 0, 50, 100])) / 100,
            )
            for i in range(N_PLACEMENTS)
        )
        start = timezone.now() - timedelta(days=1)
        campaigns = cm.Campaign.objects.bulk_create(
            cm.Campaign(
                advertiser=advertisers[i % len(advertisers)],
                name=f"Campaign {i}",
                status=cm.CampaignStatus.ACTIVE,
                start_at=start,
                daily_budget=Decimal("10000.00"),
            )
            for i in range(N_CAMPAIGNS)
        )
        items = cm.LineItem.objects.bulk_create(
            cm.LineItem(
                campaign=campaigns[i % N_CAMPAIGNS],
                name=f"Line item {i}",
                bid=Decimal(rng.randint(5_000, 200_000)) / 10_000,
                sizes=rng.sample(list(SIZES), 1 if rng.random() < 0.8 else 2),
            )
            for i in range(N_LINE_ITEMS)
        )
        owners = [(li, size) for li in items for size in li.sizes]
        creatives = Creative.objects.bulk_create(
            Creative(
                advertiser_id=li.campaign.advertiser_id,
                name=f"{li.name} {size}",
                image=images[size],
                width=SIZES[size][0],
                height=SIZES[size][1],
                click_url=f"https://example.com/landing?li={li.pk}",
            )
            for li, size in owners
        )
        cm.LineItemCreative.objects.bulk_create(
            cm.LineItemCreative(line_item_id=li.pk, creative_id=c.pk)
            for (li, _), c in zip(owners, creatives, strict=True)
        )
        placement_link = cm.LineItem.placements.through
        placement_link.objects.bulk_create(
            placement_link(lineitem_id=li.pk, placement_id=p.pk)
            for li in items
            if rng.random() < 0.25
            for p in rng.sample(placements, rng.randint(1, 3))
        )
    loaded = time.perf_counter()
    version = publish_snapshot()
    published = time.perf_counter()
    nbytes = len(redis_client().get(redis_keys().snapshot_data(version)) or b"")
    print(
        f"data: migrate {migrated - started:.1f}s, load {N_LINE_ITEMS} line items / "
        f"{len(creatives)} creatives / {N_PLACEMENTS} placements {loaded - migrated:.1f}s, "
        f"publish v{version} {published - loaded:.1f}s, snapshot {nbytes:,} bytes"
    )
    bodies = []
    for _ in range(N_BODIES):
        p = rng.choice(placements)
        slots = [
            {"id": f"s{n}", "sizes": rng.sample(p.sizes, rng.randint(1, len(p.sizes)))}
            for n in range(rng.choice([1, 1, 2]))
        ]
        bodies.append(json.dumps({"placement": p.key, "slots": slots}))
    return bodies


def pin(cpu: int, cmd: list[str]) -> list[str]:
    return ["taskset", "-c", str(cpu), *cmd] if shutil.which("taskset") else cmd


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request(port: int, method: str, path: str, body: str | None = None) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request(method, path, body, {"Content-Type": "application/json"})
        return conn.getresponse().status
    finally:
        conn.close()


def server_cmd(server: str, app: str, port: int) -> list[str]:
    common = ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    if server == "granian":
        return [str(BIN / "granian"), "--interface", "asgi", "--workers", "1", *common, app]
    return [str(BIN / "uvicorn"), "--no-access-log", *common, *UVICORN_FAST, app]


def start_server(cmd: list[str], probe_port: int, probe: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            pin(0, cmd), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    _procs.append(proc)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            if request(probe_port, "GET", probe) == 200:
                return proc
        time.sleep(0.2)
    raise TimeoutError(f"{cmd[0]} not ready after 60 s:\n{log.read_text()[-3000:]}")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)  # the whole group: granian runs its worker as a child
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
    if proc in _procs:
        _procs.remove(proc)


def group_rss_mib(pgid: int) -> float:
    """VmRSS summed over the process group (granian runs its worker as a child process)."""
    kib = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[2]) != pgid:
                continue
            if found := RSS_RE.search((stat.parent / "status").read_text()):
                kib += int(found.group(1))
    return kib / 1024


def run_wrk(port: int, path: str, bodies: list[str], seconds: int, tmp: Path) -> Result:
    script = tmp / "bench.lua"
    lua_bodies = ", ".join(f"[==[{b}]==]" for b in bodies)
    script.write_text(WRK_SCRIPT.replace("{BODIES}", "{" + lua_bodies + "}"))
    values = [0.0] * 5
    for duration in (WARMUP, seconds):  # the first run warms up and is discarded
        cmd = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{duration}s", "-s", str(script)]
        url = f"http://127.0.0.1:{port}{path}"
        run = subprocess.run(
            pin(1, [*cmd, url]), capture_output=True, text=True, timeout=duration + 30, check=True
        )
        line = next(x for x in run.stdout.splitlines() if x.startswith("BENCH "))
        values = [float(v) for v in line.split()[1:]]
    reqs, duration_us, p50, p99, errors = values
    return Result("", "", reqs / duration_us * 1e6, p50 / 1000, p99 / 1000, int(errors))


def run_python(port: int, path: str, bodies: list[str], seconds: int, tmp: Path) -> Result:
    head = f"{'POST' if bodies else 'GET'} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    reqs = [
        f"{head}Content-Type: application/json\r\nContent-Length: {len(b)}\r\n\r\n{b}"
        for b in bodies
    ] or [f"{head}\r\n"]
    spec = {"port": port, "seconds": seconds, "warmup": WARMUP, "connections": CONNECTIONS}
    (tmp / "loadgen.json").write_text(json.dumps({**spec, "requests": reqs}))
    cmd = [sys.executable, "-m", "bench.loadgen", str(tmp / "loadgen.json")]
    timeout = seconds + WARMUP + 30
    run = subprocess.run(
        pin(1, cmd), cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=True
    )
    rps, p50, p99, errors = json.loads(run.stdout.splitlines()[-1])
    return Result("", "", rps, p50, p99, int(errors))


def bench(server: str, bodies: list[str], seconds: int, use_wrk: bool, tmp: Path) -> list[Result]:
    results = []
    for case, app, path in CASES:
        port = free_port()
        probe = path or "/v1/health"
        proc = start_server(server_cmd(server, app, port), port, probe, tmp / f"{server}.log")
        try:
            if case == "/v1/ad":
                statuses = [request(port, "POST", "/v1/ad", b) for b in bodies]
                fills = {s: statuses.count(s) for s in sorted(set(statuses))}
                print(f"{server}: fill check over {len(bodies)} bodies, status counts {fills}")
            run = run_wrk if use_wrk else run_python
            result = run(port, path or "/v1/ad", bodies if case == "/v1/ad" else [], seconds, tmp)
            result.server, result.case, result.rss_mib = server, case, group_rss_mib(proc.pid)
            print(f"{server} {case}: {result.rps:,.0f} req/s")
            results.append(result)
        finally:
            stop_server(proc)
    return results


def print_table(results: list[Result]) -> None:
    hello = {r.server: r.rps for r in results if r.case == "hello"}
    head = ("server", "case", "req/s", "p50 ms", "p99 ms", "RSS MiB", "errors", "vs hello")
    print("\n{:<9}{:<8}{:>9}{:>8}{:>8}{:>9}{:>8}{:>10}".format(*head))
    for r in results:
        ratio = (
            f"{r.rps / hello[r.server]:.2f}" if r.case != "hello" and hello.get(r.server) else ""
        )
        print(
            f"{r.server:<9}{r.case:<8}{r.rps:>9,.0f}{r.p50_ms:>8.2f}{r.p99_ms:>8.2f}"
            f"{r.rss_mib:>9.1f}{r.errors:>8}{ratio:>10}"
        )


def delete_prefix(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start : start + 1000])
    client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=int, default=10, help="measured seconds per case")
    parser.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto")
    args = parser.parse_args()
    use_wrk = args.generator == "wrk" or (args.generator == "auto" and bool(shutil.which("wrk")))
    pinning = "server on cpu 0, load on cpu 1" if shutil.which("taskset") else "no pinning"
    generator = "wrk" if use_wrk else "python asyncio"
    print(f"load generator: {generator}, {CONNECTIONS} connections, {WARMUP}s warm-up")
    print(f"{args.seconds}s per case, {pinning}, uvicorn options {UVICORN_FAST or 'default'}")
    # Ctrl-C and SIGTERM both unwind through the cleanup below (SIGINT even if inherited ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    prefix = configure(tmp)
    try:
        delete_prefix(prefix)
        bodies = load_data(random.Random(42))
        results: list[Result] = []
        for server in ("granian", "uvicorn"):
            if (BIN / server).exists():
                results += bench(server, bodies, args.seconds, use_wrk, tmp)
            else:
                print(f"{server} is not installed: skipped")
        print_table(results)
    except KeyboardInterrupt:
        print("interrupted")
        return 130
    finally:
        for proc in list(_procs):
            stop_server(proc)
        with contextlib.suppress(Exception):
            delete_prefix(prefix)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
