"""Invalid-traffic filtering against mixed traffic, through the real serving app in process.

Run: .venv/bin/python bench/ivt_sim.py [--humans 1500] [--seed 7] [--max-seconds 120]

Human-like visitors and four invalid patterns, in known proportions, ask the real
`ServingApp` (ASGI, called in process: loopback only, nothing listens) for ads and fire the
impression and click URLs they get, once with filtering off and once with it on (the
default thresholds unless given). Every ad request, impression and click is then judged from
what serving recorded (the event stream, the reason on each event, the 204s at decision)
and the run is rolled up by the real ingestion, whose billed spend is printed beside it:

- human: 1-3 page views each, a browser user agent, a residential address, a click on 3%
  of views, 400-2,000 ms after the page rendered (2-10 s, scaled like the threshold);
- data-center: browser user agents from cloud addresses (the shipped starter list);
- click-farm: a few ids (and one /24) viewing and clicking far faster than people do;
- fast-click: an impression then a click 0-80 ms after the page rendered (0-400 ms,
  scaled), a fresh id and address each;
- pixel-stuffing: pages firing many impressions at once for one visitor, in hidden 1x1
  frames: the markup's viewability handler reports a 1x1 box.

With filtering on, the held pseudonyms' refunds (the beat job's, in process) then run and
the run is judged again: what those ids were billed before their hold counts as caught.

Every visitor's page runs the markup's viewability handler: `measurable` with the box's
rendered size once the pixel has loaded (300x250, or 1x1 for the stuffers' hidden frames).

Times are scaled by 1/5: the click-timing rule runs with `--min-click-ms` (200 by default,
the product's 1,000 ms scaled) so that a run takes seconds, not minutes; everything else uses
the product's thresholds. A visitor's click delay runs from the moment its page rendered,
with its pixels in flight, not from their answers: a browser never waits for those (an
earlier version of this script did, so on a loaded machine, where an answer took 130-500 ms
in process, every 0-80 ms click reached serving over 200 ms after its impression). Prints per
pattern the events that were invalid by design, how many were caught (recall), per reason
how many caught events were really invalid (precision), the valid events refused (false
positives) and the share of billed spend that came from invalid traffic, off and on.
"""

import argparse
import asyncio
import dataclasses
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

from bench.common import django_bench  # noqa: E402

BROWSERS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
    "like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15",
)
# Cloud addresses from the shipped starter list (AWS, Google Cloud, DigitalOcean, Hetzner).
CLOUD_PREFIXES = ("3.80.", "35.190.", "104.131.", "95.216.")
PATTERNS = ("human", "datacenter", "click_farm", "fast_click", "pixel_stuffing")


@dataclass
class Attempt:
    """One billable event a visitor tried to cause: an impression or a click."""

    pattern: str
    kind: str  # "imp" or "clk"
    decision: str = ""  # "" when the ad request got no ad
    refused_at_decision: str = ""  # the no-fill reason when refused at the decision


@dataclass
class Run:
    attempts: list[Attempt] = field(default_factory=list)
    seconds: float = 0.0
    pixel_ms: list[float] = field(default_factory=list)  # each impression pixel's answer


def residential_ip(rng: random.Random) -> str:
    return f"81.{rng.randrange(2, 250)}.{rng.randrange(0, 255)}.{rng.randrange(1, 254)}"


class Visitors:
    """The traffic plan: (pattern, user id, address, user agent, views, click share, delay)."""

    def __init__(self, args: argparse.Namespace) -> None:
        rng = random.Random(args.seed)
        plan: list[tuple[str, str, str, str, int, float, tuple[int, int], int]] = []
        for n in range(args.humans):
            plan.append(("human", f"h{n}", residential_ip(rng), rng.choice(BROWSERS),
                         rng.randint(1, 3), 0.03, (400, 2000), 1))  # fmt: skip
        for n in range(args.humans // 15):
            ip = f"{rng.choice(CLOUD_PREFIXES)}{rng.randrange(0, 255)}.{rng.randrange(1, 254)}"
            plan.append(("datacenter", f"dc{n}", ip, rng.choice(BROWSERS), 2, 0.2, (300, 600), 1))
        farm_net = "198.51.100."
        for n in range(args.farm_ids):
            plan.append(("click_farm", f"farm{n}", f"{farm_net}{n + 10}", BROWSERS[0],
                         args.farm_views, 0.3, (250, 400), 1))  # fmt: skip
        for n in range(args.humans // 15):
            plan.append(("fast_click", f"fc{n}", residential_ip(rng), rng.choice(BROWSERS), 1,
                         1.0, (0, 80), 1))  # fmt: skip
        for n in range(args.stuffed_visitors):
            plan.append(("pixel_stuffing", f"ps{n}", residential_ip(rng), rng.choice(BROWSERS),
                         args.stuffed_pages, 0.0, (0, 0), args.stuffed_slots))  # fmt: skip
        rng.shuffle(plan)
        self.plan = plan
        self.rng = rng


async def visit(client: Any, key: str, who: tuple[Any, ...], run: Run, rng: random.Random) -> None:
    pattern, user, ip, ua, views, click_share, delay, slots = who
    headers = {"user-agent": ua, "x-real-ip": ip}
    for _ in range(views):
        body = {
            "placement": key,
            "slots": [{"id": f"s{n}", "sizes": ["300x250"]} for n in range(slots)],
            "device": {"ua": ua, "ip": ip},
            "user": {"id": user},
        }
        answer = await client.post("/v1/ad", json=body, headers=headers)
        clicks = rng.random() < click_share
        if answer.status_code != 200:
            reason = answer.headers.get("x-no-fill-reason", str(answer.status_code))
            for _ in range(slots):
                run.attempts.append(Attempt(pattern, "imp", refused_at_decision=reason))
            if clicks:
                run.attempts.append(Attempt(pattern, "clk", refused_at_decision=reason))
            continue
        decisions = answer.json()["decisions"]

        async def pixel(d: dict[str, Any]) -> None:
            sent = time.perf_counter()
            await client.get(d["impression_url"], headers=headers)
            run.pixel_ms.append((time.perf_counter() - sent) * 1000)
            # The markup's viewability handler, once the pixel has loaded: the box's size,
            # clipped to its frame (a stuffer's 1x1 hidden frames).
            size = "w=1&h=1" if pattern == "pixel_stuffing" else "w=300&h=250"
            beacon = d["impression_url"].replace("/v1/imp/", "/v1/ev/", 1)
            await client.get(f"{beacon}?e=measurable&{size}", headers=headers)

        # The page renders: its pixels go out and the visitor's delay runs from then, as in a
        # browser, which never waits for a pixel's answer before a click.
        pixels = [asyncio.create_task(pixel(d)) for d in decisions]
        run.attempts += [Attempt(pattern, "imp", d["id"]) for d in decisions]
        if clicks and decisions:
            await asyncio.sleep(rng.uniform(*delay) / 1000)
            d = decisions[0]
            await client.get(d["click_url"], headers=headers)
            run.attempts.append(Attempt(pattern, "clk", d["id"]))
        await asyncio.gather(*pixels)


async def drive(config: Any, key: str, visitors: Visitors, max_seconds: float) -> Run:
    import httpx

    from serving.app import ServingApp

    app = ServingApp(config)
    await app.startup()
    run = Run()
    started = time.perf_counter()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sim.test") as client:
            queue = list(visitors.plan)
            while queue and time.perf_counter() - started < max_seconds:
                batch, queue = queue[:48], queue[48:]
                await asyncio.gather(*(visit(client, key, who, run, visitors.rng) for who in batch))
        await app.sink.drain()
    finally:
        await app.shutdown()
    run.seconds = time.perf_counter() - started
    return run


def recorded(client: Any, stream: str, since: str) -> dict[tuple[str, str], str]:
    """(decision, kind) → reason ("" when billed) of the impressions and clicks recorded."""
    from serving.events import decode_events

    found: dict[tuple[str, str], str] = {}
    low = since
    while True:
        batch = client.xrange(stream, min=low, max="+", count=5000)
        if not batch:
            return found
        for _, fields in batch:
            for e in decode_events(fields[b"v"]):
                if e.t in ("imp", "clk"):
                    found[(e.d, e.t)] = e.iv
                elif e.t == "ivi":  # a billed impression taken back (pixel stuffing)
                    found[(e.d, "imp")] = e.iv
        low = "(" + batch[-1][0].decode()


# The events each pattern makes that are invalid by design: a fast-clicker's impression, a
# click-farm's or a stuffer's first few in a minute look like anyone's.
INVALID_KINDS = {
    "datacenter": ("imp", "clk"),
    "click_farm": ("imp", "clk"),
    "fast_click": ("clk",),
    "pixel_stuffing": ("imp",),
}


def judge(run: Run, seen: dict[tuple[str, str], str]) -> dict[str, Any]:
    caught: Counter[str] = Counter()
    total: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    reasons_right: Counter[str] = Counter()
    human_events = human_refused = 0
    for a in run.attempts:
        invalid = a.pattern != "human" and a.kind in INVALID_KINDS[a.pattern]
        if a.refused_at_decision:
            reason = a.refused_at_decision
        else:
            reason = seen.get((a.decision, a.kind), "missing")
            if a.kind == "clk" and reason == "missing":
                reason = "repeat"
        flagged = reason != ""
        if a.pattern == "human":
            human_events += 1
            human_refused += flagged
        elif invalid:
            total[a.pattern] += 1
            caught[a.pattern] += flagged
        if flagged:
            reasons[reason] += 1
            reasons_right[reason] += a.pattern != "human"
    return {
        "caught": caught, "total": total, "reasons": reasons, "right": reasons_right,
        "human": (human_events, human_refused),
    }  # fmt: skip


def billed_spend(
    client: Any,
    stream: str,
    since: str,
    run: Run,
    refunded: frozenset[tuple[str, str]] = frozenset(),
) -> tuple[Decimal, Decimal]:
    """(all billed spend, billed spend of invalid traffic) from the recorded events, less
    the `refunded` (decision, kind) events."""
    from serving.events import decode_events

    pattern_of = {a.decision: a.pattern for a in run.attempts if a.decision}
    total = invalid = 0
    low = since
    while True:
        batch = client.xrange(stream, min=low, max="+", count=5000)
        if not batch:
            break
        for _, fields in batch:
            for e in decode_events(fields[b"v"]):
                sign = 1 if e.t in ("imp", "clk") and not e.iv else -1 if e.t == "ivi" else 0
                if sign == 1 and (e.d, e.t) in refunded:
                    sign = 0
                total += sign * e.cpm
                pattern = pattern_of.get(e.d, "human")
                if (
                    pattern != "human"
                    and ("imp" if e.t == "ivi" else e.t) in INVALID_KINDS[pattern]
                ):
                    invalid += sign * e.cpm
        low = "(" + batch[-1][0].decode()
    nanos = Decimal(1_000_000_000)
    return Decimal(total) / nanos, Decimal(invalid) / nanos


def refund_held(client: Any, stream: str, since: str) -> frozenset[tuple[str, str]]:
    """Run the held pseudonyms' refunds (the beat's job and each refund, in process): the
    (decision, kind) of the billed events they refunded."""
    from reporting.ivt.models import IvtRefund
    from reporting.ivt.refunds import refund, refund_held
    from serving.events import decode_events

    windows = {}
    for row in IvtRefund.objects.filter(pk__in=refund_held()):
        windows[row.pseudonym] = (row.start.timestamp() * 1000, row.end.timestamp() * 1000)
        refund(row.pk)
    found: set[tuple[str, str]] = set()
    low = since
    while True:
        batch = client.xrange(stream, min=low, max="+", count=5000)
        if not batch:
            return frozenset(found)
        for _, fields in batch:
            for e in decode_events(fields[b"v"]):
                window = windows.get(e.u) if e.t in ("imp", "clk") and not e.iv else None
                if window and window[0] <= e.ts < window[1]:
                    found.add((e.d, e.t))
        low = "(" + batch[-1][0].decode()


def pct(part: int | Decimal, whole: int | Decimal) -> str:
    return f"{100 * part / whole:6.2f} %" if whole else "     - "


def report(name: str, run: Run, verdict: dict[str, Any], spend: tuple[Decimal, Decimal]) -> None:
    print(
        f"\n== filtering {name}: {len(run.attempts):,} billable events tried in {run.seconds:.1f} s"
    )
    print(f"{'pattern':<16}{'invalid events':>15}{'caught':>9}{'recall':>10}")
    for pattern in PATTERNS[1:]:
        t, c = verdict["total"][pattern], verdict["caught"][pattern]
        print(f"{pattern:<16}{t:>15,}{c:>9,}{pct(c, t):>10}")
    events, refused = verdict["human"]
    print(
        f"{'human (valid)':<16}{events:>15,}{refused:>9,}   false positives {pct(refused, events)}"
    )
    if verdict["reasons"]:
        print(f"{'reason':<26}{'events':>8}{'precision':>11}")
        for reason, n in verdict["reasons"].most_common():
            print(f"{reason:<26}{n:>8,}{pct(verdict['right'][reason], n):>11}")
    if run.pixel_ms:
        ms = sorted(run.pixel_ms)
        p50, p99 = ms[len(ms) // 2], ms[int(len(ms) * 0.99)]
        print(f"impression pixel answered in {p50:.0f} ms (median), {p99:.0f} ms (p99)")
    total, wrong = spend
    print(f"billed spend {total:.6f}, of it invalid traffic {wrong:.6f}: {pct(wrong, total)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--humans", type=int, default=600)
    parser.add_argument("--farm-ids", type=int, default=2)
    parser.add_argument("--farm-views", type=int, default=300)
    parser.add_argument("--stuffed-visitors", type=int, default=10)
    parser.add_argument("--stuffed-pages", type=int, default=4)
    parser.add_argument("--stuffed-slots", type=int, default=10)  # the most one request may ask
    parser.add_argument("--min-click-ms", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--max-seconds", type=float, default=240.0, help="per run")
    args = parser.parse_args()
    with django_bench("ivt"):
        simulate(args)


def simulate(args: argparse.Namespace) -> None:
    from django.conf import settings
    from django.db.models import Sum
    from django_redis import get_redis_connection

    from campaigns.snapshot import publish_snapshot
    from reporting.ingest import ingest_events
    from reporting.ivt.models import IvtRefund
    from reporting.models import HourlyRollup
    from serving.config import ServingConfig
    from serving.ivt.judge import IvtRules
    from serving.keys import RedisKeys
    from tests.factories import make_campaign, make_line_item, make_placement

    placement = make_placement()
    campaign = make_campaign(daily_budget=Decimal("100000"))
    make_line_item(campaign, "2.00")
    make_line_item(campaign, "1.50")  # a second price to clear at
    publish_snapshot()
    client = get_redis_connection("default")
    stream = RedisKeys(settings.REDIS_KEY_PREFIX).events
    base = ServingConfig.from_settings()
    visitors = Visitors(args)
    rules = IvtRules.from_settings()
    print(f"{len(visitors.plan):,} visitors: " + ", ".join(
        f"{p} {sum(1 for v in visitors.plan if v[0] == p):,}" for p in PATTERNS
    ))  # fmt: skip
    for name, enabled in (("off", False), ("on", True)):
        rules_now = dataclasses.replace(rules, enabled=enabled, min_click_ms=args.min_click_ms)
        config = dataclasses.replace(base, ivt_rules=rules_now, client_ip_header="x-real-ip")
        info: Any = client.xinfo_stream(stream) if client.exists(stream) else None
        since = "(" + info["last-generated-id"].decode() if info else "-"
        run = asyncio.run(drive(config, placement.key, visitors, args.max_seconds))
        seen = recorded(client, stream, since)
        spend = billed_spend(client, stream, since, run)
        report(name, run, judge(run, seen), spend)
        before = HourlyRollup.objects.aggregate(s=Sum("spend"))["s"] or Decimal(0)
        while ingest_events().read:
            pass
        after = HourlyRollup.objects.aggregate(s=Sum("spend"))["s"] or Decimal(0)
        print(f"rolled up by ingestion: billed spend {after - before:.6f}")
        if enabled:
            # Pseudonyms held over their limits: what they were billed before, refunded.
            refunded = refund_held(client, stream, since)
            seen.update(dict.fromkeys(refunded, "refund"))
            spend = billed_spend(client, stream, since, run, refunded)
            report(f"{name}, after the held pseudonyms' refunds", run, judge(run, seen), spend)
            final = HourlyRollup.objects.aggregate(s=Sum("spend"))["s"] or Decimal(0)
            moved = IvtRefund.objects.aggregate(s=Sum("refunded"))["s"] or Decimal(0)
            # The same ids' billed events of the run with filtering off are in the hour too.
            print(f"refunds moved {moved:.6f} (this run's and, the same ids in the same hour,"
                  f" the run with filtering off's); in the rollups: billed spend"
                  f" {final - before:.6f} = {after - before:.6f} - {moved:.6f}")  # fmt: skip
        # The next run starts with no behaviour counted (the rate rules' windows).
        for pattern in ("ivt:*", "seen:*", "fc:*"):
            keys = list(client.scan_iter(f"{settings.REDIS_KEY_PREFIX}{pattern}", count=1000))
            if keys:
                client.delete(*keys)
    print(f"\nthresholds: {dataclasses.replace(rules, min_click_ms=args.min_click_ms)}")


if __name__ == "__main__":
    main()
