"""Ingest throughput and lag at a sustained ad-request rate, with and without the measurement
rollups, in one run.

    DATABASE_URL=postgres://... .venv/bin/python bench/ingest.py [--rate 2500] [--seconds 60]
        [--drain-seconds 60] [--batch 5000] [--backlog 50000]

Starts a redis-server of its own on a free loopback port (as tests/faults/services.py does)
and uses the migrated Postgres of DATABASE_URL. A producer process writes the event stream as
serving does at `--rate` ad requests a second for `--seconds`: per request one entry (its
"req", two "loss" events, the consent ledger on the first), and for its decisions impression
(80 % of fills), click (2 % of impressions), creative error (1 %), measurable (50 %) and
viewable (30 %) entries, and buyer latency counts every 5 s; 70 % of requests are filled,
over 20 placements and 100 line items. Meanwhile this process runs ingestion
(`reporting.ingest.ingest_events`, one batch of `--batch` per call, as the Celery task does)
in a loop and samples the lag every second: entries not yet rolled up and the age of the
oldest of them. After the producer stops, ingestion drains the rest (at most
`--drain-seconds`). Then `--backlog` entries of the same mix are written at once and rolled
up (full batches): one worker's ceiling, which the sustained part cannot show once ingestion
keeps up (every call then reads what came during the last). Two phases, each on a fresh
stream:

- `full`: ingestion as shipped;
- `baseline`: the same with the measurement rollups (DemandHourly, GeoDeviceHourly,
  CreativeErrorHourly, BuyerLatencyHourly) not written: what the measurement columns cost.

Prints entries/s and lag per phase. Bench rows use placement ids from 7,500,000, line items
from 8,500,000, country "ZZ", a consent reason "bench" and decision ids starting "bench";
they are deleted afterwards, nothing else is touched. Stops by itself.
"""

import argparse
import multiprocessing
import os
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import postgres_bench

PL, LI, ADV, BUYER = 7_500_000, 8_500_000, 9_500_000, 9_600_000
LEDGER = "gdpr=0 → personalised:bench"
# An impression's later entries: (kind, share of impressions, r).
FOLLOW_UPS = (("clk", 0.02, ""), ("err", 0.01, "405"), ("evt", 0.5, "measurable"),
              ("evt", 0.3, "viewable"))  # fmt: skip


def entries(rng: random.Random, ts: int) -> list[bytes]:
    """One ad request's stream entries, as serving writes them: its "req" with two "loss"
    events (and the consent ledger), then, when filled and shown, the impression and its
    follow-ups."""
    from serving.events import Event, encode_events

    pl, li = PL + rng.randrange(20), LI + rng.randrange(100)
    ids: dict[str, Any] = {"li": li, "cp": li // 10, "adv": ADV + li % 10, "cr": li}
    rid = f"bench{uuid.uuid4().hex}"  # unique across runs and phases: billed once each
    filled = rng.random() < 0.7
    g = f"ZZ{rng.choice((2, 4, 5))}"
    head = Event(
        t="req", ts=ts, pl=pl, d=rid, cs=LEDGER, u=rid[5:27],
        ip="192.0.2.0", rq="caller-id", dr="v1", g=g, **(ids if filled else {}),
    )  # fmt: skip
    losses = [
        Event(t="loss", ts=ts, pl=pl, li=LI + rng.randrange(100), cp=1, adv=ADV, d=rid,
              r="outbid")
        for _ in range(2)
    ]  # fmt: skip
    out = [encode_events([head, *losses])]
    if not filled or rng.random() >= 0.8:
        return out
    common: dict[str, Any] = {"ts": ts, "pl": pl, "d": rid, "dr": "v1", "g": g, **ids}
    out.append(encode_events([Event(t="imp", cpm=2_500_000, u=head.u, ip="192.0.2.0",
                                    **common)]))  # fmt: skip
    for kind, share, r in FOLLOW_UPS:
        if rng.random() < share:
            out.append(encode_events([Event(t=kind, r=r, **common)]))
    return out


def latencies(ts: int) -> bytes:
    """The buyer latency counts one serving process writes every few seconds."""
    from serving.events import Event, encode_events

    return encode_events([Event(t="lat", ts=ts, pl=0, b=BUYER + b, r=str(k), n=5)
                          for b in range(4) for k in range(40, 45)])  # fmt: skip


def produce(url: str, stream: str, rate: int, seconds: float, seed: int) -> None:
    """Write `rate` ad requests' entries a second for `seconds` (paced every 10 ms)."""
    import redis

    rng = random.Random(seed)
    client = redis.Redis.from_url(url)
    started = time.monotonic()
    made = 0
    next_latency = started
    while (elapsed := time.monotonic() - started) < seconds:
        due = int(elapsed * rate) - made
        pipe = client.pipeline(transaction=False)
        ts = int(time.time() * 1000)
        for _ in range(due):
            for value in entries(rng, ts):
                pipe.xadd(stream, {"v": value})
        if time.monotonic() >= next_latency:
            pipe.xadd(stream, {"v": latencies(ts)})
            next_latency += 5
        made += due
        pipe.execute()
        time.sleep(0.01)


def lag(client: Any, stream: str, group: str) -> tuple[int, float]:
    """(entries not yet rolled up, age in seconds of the oldest of them)."""
    info = {g["name"].decode(): g for g in client.xinfo_groups(stream)}.get(group)
    if info is None:
        first = client.xrange(stream, count=1)
        behind = client.xlen(stream)
    else:
        behind = (info.get("lag") or 0) + info["pending"]
        if info["pending"]:
            first = [
                (p["message_id"], None) for p in client.xpending_range(stream, group, "-", "+", 1)
            ]
        else:
            first = client.xrange(stream, min=f"({info['last-delivered-id'].decode()}", count=1)
    if not behind or not first:
        return behind, 0.0
    return behind, max(0.0, time.time() - int(first[0][0].decode().split("-")[0]) / 1000)


MEASUREMENT_WRITERS = ("write_demand", "write_geo", "write_errors", "write_latency")


def without_measurement() -> dict[str, Any]:
    """Ingestion without the measurement rollups from now on; what to put back."""
    import reporting.ingest as ingest

    saved = {n: getattr(ingest, n) for n in MEASUREMENT_WRITERS}
    for n in saved:
        setattr(ingest, n, lambda *a, **k: None)
    return saved


def run_phase(name: str, args: argparse.Namespace, url: str, measurement: bool) -> dict[str, Any]:
    from django.conf import settings
    from django_redis import get_redis_connection

    import reporting.ingest as ingest
    from serving.keys import RedisKeys

    settings.REDIS_KEY_PREFIX = f"bench-ingest-{name}:"
    stream = RedisKeys(settings.REDIS_KEY_PREFIX).events
    client = get_redis_connection("default")
    saved = without_measurement() if not measurement else {}
    producer = multiprocessing.get_context("spawn").Process(
        target=produce, args=(url, stream, args.rate, args.seconds, 1)
    )
    started = time.monotonic()
    producer.start()
    read, busy, worst, worst_age, samples = 0, 0.0, 0, 0.0, []
    next_sample = started + 1
    try:
        while True:
            began = time.monotonic()
            result = ingest.ingest_events(batch_size=args.batch, max_batches=1)
            if result.read:
                busy += time.monotonic() - began
            read += result.read
            now = time.monotonic()
            if now >= next_sample:
                behind, age = lag(client, stream, ingest.GROUP) if client.exists(stream) else (0, 0)
                samples.append((now - started, behind, age))
                worst, worst_age = max(worst, behind), max(worst_age, age)
                next_sample = now + 1
            if not producer.is_alive():
                behind, _ = lag(client, stream, ingest.GROUP)
                if behind == 0 or now - started > args.seconds + args.drain_seconds:
                    break
            if not result.read:
                time.sleep(0.05)
        elapsed = time.monotonic() - started
        left, left_age = lag(client, stream, ingest.GROUP)
        drain = drain_backlog(args, url, stream) if args.backlog and behind == 0 else 0.0
    finally:
        for n, fn in saved.items():
            setattr(ingest, n, fn)
        producer.join(timeout=5)
        if producer.is_alive():
            producer.terminate()
    during = [s for s in samples if s[0] <= args.seconds]
    return {
        "name": name, "entries": read, "seconds": elapsed, "rate": read / elapsed,
        "capacity": read / busy if busy else 0.0, "busy": busy / elapsed,
        "worst": worst, "worst_age": worst_age, "left": left, "left_age": left_age,
        "end_lag": during[-1][1:] if during else (0, 0.0), "written": client.xlen(stream),
        "drain": drain,
    }  # fmt: skip


def drain_backlog(args: argparse.Namespace, url: str, stream: str) -> float:
    """Entries/s rolling up a backlog of `--backlog` entries written at once: full batches,
    what one worker can do (the sustained phase shows only that it keeps up)."""
    import reporting.ingest as ingest
    from bench.scale_ingest import fill

    written = fill(url, (stream,), args.backlog)
    began = time.monotonic()
    drained = 0
    while drained < written and time.monotonic() - began < args.drain_seconds:
        drained += ingest.ingest_events(batch_size=args.batch, max_batches=1).read
    return drained / (time.monotonic() - began)


def clean() -> None:
    from django.db import connection

    with connection.cursor() as c:
        for table, where in (
            ("reporting_hourlyrollup", f"placement_id >= {PL} AND placement_id < {PL + 100}"),
            ("reporting_demandhourly", f"placement_id >= {PL} AND placement_id < {PL + 100}"),
            ("reporting_creativehourly", f"line_item_id >= {LI} AND line_item_id < {LI + 100}"),
            ("reporting_creativeerrorhourly",
             f"line_item_id >= {LI} AND line_item_id < {LI + 100}"),
            ("reporting_deliverydiagnostichourly",
             f"line_item_id >= {LI} AND line_item_id < {LI + 100}"),
            ("reporting_geodevicehourly", "country = 'ZZ'"),
            ("reporting_consenthourly", "reason = 'bench'"),
            ("reporting_buyerlatencyhourly", f"buyer_id >= {BUYER} AND buyer_id < {BUYER + 10}"),
            ("reporting_billeddecision", "decision_id LIKE 'bench%%'"),
            ("reporting_streamwatermark", "stream LIKE 'bench-ingest-%%'"),
        ):  # fmt: skip
            c.execute(f"DELETE FROM {table} WHERE {where}")  # noqa: S608 - constants


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=2500, help="ad requests a second")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--drain-seconds", type=float, default=60)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--backlog", type=int, default=50_000, help="entries drained at once")
    args = parser.parse_args()
    with postgres_bench("ingest", "bench/ingest.py") as url:
        clean()
        try:
            results = [
                run_phase("full", args, url, measurement=True),
                run_phase("baseline", args, url, measurement=False),
            ]
        finally:
            clean()
    load = os.getloadavg()[0]
    print(f"{args.rate:,} ad requests/s for {args.seconds:.0f} s, batches of {args.batch:,}; "
          f"load average {load:.1f} on {os.cpu_count()} cores")  # fmt: skip
    print("entries/s: ingested over the phase; capacity: entries per second spent ingesting; "
          "busy: share of the phase spent in calls that read something (near 100 % with a "
          "small lag: every call finds what came during the last one, and capacity is about "
          "the arrival rate); backlog/s: entries/s rolling up a backlog of "
          f"{args.backlog:,} written at once afterwards (full batches: one worker's "
          "ceiling)")  # fmt: skip
    print(f"{'phase':<10}{'entries':>9}{'entries/s':>11}{'capacity':>10}{'busy':>6}{'max lag':>10}"
          f"{'max lag s':>11}{'lag at 60 s':>20}{'left':>9}{'backlog/s':>11}")  # fmt: skip
    for r in results:
        end_n, end_s = r["end_lag"]
        print(f"{r['name']:<10}{r['entries']:>9,}{r['rate']:>11,.0f}{r['capacity']:>10,.0f}"
              f"{r['busy']:>6.0%}"
              f"{r['worst']:>10,}{r['worst_age']:>11.1f}{f'{end_n:,} ({end_s:.1f} s)':>20}"
              f"{r['left']:>9,}{r['drain']:>11,.0f}")  # fmt: skip
    full, base = results
    print(
        f"with the measurement rollups: {full['capacity'] / base['capacity']:.0%} of the "
        "baseline's capacity"
        + (f", {full['drain'] / base['drain']:.0%} of its backlog/s" if base["drain"] else "")
    )


if __name__ == "__main__":
    main()
