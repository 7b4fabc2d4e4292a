"""The benchmark's results, its tables and its verdict against issue 19's targets."""

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.book import Book
from bench.serve.config import (
    AIM_P99,
    AIM_RATIO,
    AIM_SWAP_P99,
    CONNECTIONS,
    MIN_RATIO,
    PROBE_RATE,
    QUIET_LOAD,
    SWAP_EVERY,
    log,
)
from bench.serve.loads import Run
from bench.serve.snapshots import SnapshotCost


@dataclass
class Results:
    book: Book | None = None
    mix: dict[str, str] = field(default_factory=dict)
    consent: dict[str, str] = field(default_factory=dict)
    fill: dict[str, str] = field(default_factory=dict)
    saturation: list[Run] = field(default_factory=list)
    fixed: list[tuple[Run, Run | None]] = field(default_factory=list)  # (app, hello baseline)
    swap: list[tuple[Run, Run, list[float], int]] = field(default_factory=list)
    caps: dict[str, Any] = field(default_factory=dict)
    losses: dict[str, int] = field(default_factory=dict)
    snapshots: list[SnapshotCost] = field(default_factory=list)
    startup: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def table(title: str, head: list[str], rows: list[list[str]], notes: Sequence[str] = ()) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=True)]
    log(f"\n== {title} ==")
    fmt = "  ".join(f"{{:{'<' if n < 2 else '>'}{w}}}" for n, w in enumerate(widths))
    log(fmt.format(*head))
    for row in rows:
        log(fmt.format(*row))
    for note in notes:
        log(f"  {note}")


def ms(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 1000 else f"{value:,.0f}"


def print_results(res: Results, args: argparse.Namespace) -> list[str]:
    book = res.book
    assert book is not None
    sh = book.shares
    c10 = res.snapshots[0]
    log("\n" + "=" * 100)
    table(
        "Book (10,000-item phase)",
        ["what", "value", ""],
        [
            [
                "line items",
                f"{c10.line_items:,}",
                f"{c10.line_items // 100} campaigns, {len(book.placements)} placements, "
                f"{c10.creatives:,} creatives",
            ],
            ["targeting", "", ", ".join(f"{k} {v:.0%}" for k, v in sh.items())],
            [
                "publish_snapshot()",
                f"{c10.total_s:.2f} s",
                f"build {c10.build_s:.2f} s + encode {c10.encode_s:.2f} s + Redis "
                f"{c10.publish_s:.2f} s; {c10.size / 1e6:.1f} MB",
            ],
        ],
    )
    table(
        "Request mix",
        ["what", "share / outcome"],
        [[k, v] for k, v in res.mix.items()]
        + [[f"policy: {k}", v] for k, v in res.consent.items()]
        + [[f"fill check {k}", v] for k, v in res.fill.items()],
    )
    hello = {r.server: r for r in res.saturation if r.case == "hello"}
    rows = []
    for r in res.saturation:
        base = hello.get(r.server)
        ratio = f"{r.rps / base.rps:.2f}" if base and r.case != "hello" else ""
        cpu_ratio = (
            f"{base.server_us / r.server_us:.2f}"
            if base and r.case != "hello" and r.server_us
            else ""
        )
        rows.append([
            r.server, r.case, f"{base.rps:,.0f}" if base else "", f"{r.rps:,.0f}", ratio,
            ms(r.p50), ms(r.p99), f"{r.server_us:,.0f}", cpu_ratio, f"{r.server_util:.2f}",
            f"{r.redis_us:,.0f}", str(r.errors),
            f"{r.gen_cpu:.2f}" + (" wrk" if r.generator == "wrk" else ""), f"{r.other_cpu:.2f}",
        ])  # fmt: skip
    table(
        f"Saturation: closed loop, {CONNECTIONS} connections, {args.seconds:g} s "
        "(baseline: raw ASGI hello-world, same server)",
        ["server", "case", "hello req/s", "req/s", "ratio", "p50 ms", "p99 ms",
         "srv CPU µs/req", "CPU ratio", "srv CPU", "redis µs/req", "errors", "gen CPU",
         "other CPU"],
        rows,
        [
            "ratio: req/s over hello's req/s. CPU ratio: hello's server CPU per request over "
            "this case's (independent of whether the generator kept up).",
            "srv CPU / gen CPU: share of its core the server / load generator used (a "
            "generator near 1.0 set the pace itself; a server well below 1.0 at saturation "
            "was held back by something else). other CPU: cores busy with processes outside "
            "this run (other work on the machine competing for both cores).",
        ],
    )  # fmt: skip
    rows = []
    for r, base in res.fixed:
        rows.append([
            r.server, r.case, r.load, f"{r.offered:,.0f}", f"{r.rps:,.0f}", ms(r.p50),
            ms(r.p90), ms(r.p99), ms(r.p999), ms(r.max),
            f"{base.p50:.2f} / {base.p99:.2f}" if base else "-", str(r.late),
            ms(r.lag_p99), f"{r.server_us:,.0f}", f"{r.server_util:.2f}", str(r.errors),
            f"{r.other_cpu:.2f}",
        ])  # fmt: skip
    table(
        f"Fixed offered load: open loop, {CONNECTIONS} connections, {args.seconds:g} s, "
        "latency from the scheduled send",
        ["server", "case", "load", "offered/s", "achieved/s", "p50", "p90", "p99", "p99.9",
         "max", "hello p50/p99", "late", "gen lag p99", "srv µs/req", "srv CPU", "errors",
         "other CPU"],
        rows,
        [
            "load: share of this server's /v1/ad saturation (openrtb: of its own). Times in ms.",
            "hello p50/p99: the raw ASGI app at the same offered rate (the floor of server + "
            "generator). late: requests that found all connections busy when due.",
        ],
    )  # fmt: skip
    rows = []
    for run, calm, swaps, published in res.swap:
        loaded = ", ".join(f"{x:,.0f}" for x in swaps) or "-"
        for case, r in (("no swaps", calm), (f"swap every {SWAP_EVERY:g} s", run)):
            rows.append([
                run.server, case, f"{r.offered:,.0f}", f"{r.rps:,.0f}", ms(r.p50), ms(r.p99),
                ms(r.p999), ms(r.max), str(r.late), f"{r.server_us:,.0f}", f"{r.server_util:.2f}",
                f"{published} / {len(swaps)}" if r is run else "-", loaded if r is run else "-",
            ])  # fmt: skip
    table(
        "Snapshot swaps under load: /v1/ad at half load (baseline: the same load without swaps)",
        ["server", "case", "offered/s", "achieved/s", "p50", "p99", "p99.9", "max", "late",
         "srv µs/req", "srv CPU", "published/loaded", "decode+index ms each"],
        rows,
        ["each swap republishes the 10,000-item snapshot with one bid changed (encoded "
         "ahead, so the publisher costs nothing during the run)."],
    )  # fmt: skip
    rows = []
    for c in res.snapshots:
        rows.append([
            f"{c.line_items:,}", f"{c.creatives:,}", f"{c.build_s:.1f}", f"{c.encode_s:.2f}",
            f"{c.size / 1e6:.1f}", f"{c.publish_s:.2f}", f"{c.server_ready_s:.1f}",
            f"{c.load_ms:,.0f}", ", ".join(f"{x:,.0f}" for x in c.swap_ms) or "-",
            f"{c.rss:,.0f}", f"{c.hwm:,.0f}", ms(c.stall_ms),
        ])  # fmt: skip
    table(
        "Snapshot cost by book size (granian; baseline: the 10,000 row)",
        ["line items", "creatives", "build s", "encode s", "MB", "Redis s", "server ready s",
         "startup load ms", "swap load ms", "RSS MiB", "peak RSS", "longest stall ms"],
        rows,
        [
            "build: campaigns.snapshot.build_snapshot(); Redis: the rest of publish_snapshot(). "
            "load ms: decode+index in the serving loop (its log line).",
            "RSS: the server's process group after the first load; peak RSS (VmHWM) after the "
            "swaps. longest stall: worst GET /v1/health latency minus its median while new "
            f"versions loaded ({PROBE_RATE}/s probe).",
        ],
    )  # fmt: skip
    if res.startup:
        table(
            f"Server start ({res.book.line_items if res.book else 0:,} items)",
            ["server", "ready s", "first load ms", "RSS MiB"],
            [[k, f"{a:.1f}", f"{b:,.0f}", f"{c:,.0f}"] for k, (a, b, c) in res.startup.items()],
        )
    caps = res.caps
    if caps:
        log(
            f"\nfrequency caps (3/day, {caps['users']} users seen with usable ids): "
            f"{caps['counters']:,} counters, {caps['at_cap']:,} at the cap, highest {caps['max']}"
            + (" (above the cap: requests of one user in flight together each read the counter "
               "before the other's increment landed)" if caps["max"] > 3 else "")
        )  # fmt: skip
    if res.losses:
        total = sum(res.losses.values())
        top = sorted(res.losses.items(), key=lambda kv: -kv[1])
        log("events of the last 20,000 requests (granian /openrtb2 half-load run): "
            + ", ".join(f"{k} {v:,}" for k, v in top[:10]) + f" (of {total:,})")  # fmt: skip
    return verdict(res, args.load_before)


def verdict(res: Results, load_before: float) -> list[str]:
    """Issue 19's aims, as ratios to the same run's hello-world, judged only on a quiet machine."""
    lines = []
    primary = res.saturation[0].server if res.saturation else ""
    hello = next((r for r in res.saturation if r.server == primary and r.case == "hello"), None)
    for case in ("/v1/ad", "/openrtb2/auction"):
        sat = next((r for r in res.saturation if r.server == primary and r.case == case), None)
        half = next(
            (r for r, _ in res.fixed if r.server == primary and r.case == case and r.target),
            None,
        )
        if sat is None or hello is None or not hello.rps:
            continue
        ratio, aim = sat.rps / hello.rps, AIM_RATIO[case]
        ok = "met" if ratio >= aim else "not done" if ratio < MIN_RATIO else "short"
        line = (f"{primary} {case}: {sat.rps:,.0f} req/s at saturation, {ratio:.3f} of hello's "
                f"{hello.rps:,.0f} ({ok}: aim ≥ {aim:g}, not done < {MIN_RATIO:g})")  # fmt: skip
        if half is not None:
            p_ok = "met" if half.p99 <= AIM_P99 else "not met"
            line += (f"; p99 {half.p99:.1f} ms at {half.offered:,.0f}/s, half of saturation "
                     f"({p_ok}: aim ≤ {AIM_P99:g} ms)")  # fmt: skip
        lines.append(line)
    for run, calm, _, _ in res.swap:
        ok = "met" if run.p99 <= AIM_SWAP_P99 else "not met"
        lines.append(
            f"{run.server} swaps every {SWAP_EVERY:g} s: p99 {run.p99:.1f} ms vs "
            f"{calm.p99:.1f} ms without ({ok}: aim ≤ {AIM_SWAP_P99:g} ms)"
        )
    lines.extend(res.notes)
    runs = res.saturation + [r for r, _ in res.fixed] + [r for r, _, _, _ in res.swap]
    noisy = max((r.other_cpu for r in runs), default=0.0)
    if noisy > 0.2:
        lines.append(
            f"other processes used up to {noisy:.2f} cores during these runs (column "
            "'other CPU'): the figures are disturbed; rerun on an idle machine"
        )
    if load_before > QUIET_LOAD:
        log(f"\n== No verdict: the load average was {load_before:.2f} before the run "
            f"(above {QUIET_LOAD:g}); the figures above are not comparable. Rerun when the "
            "machine is quiet. ==")  # fmt: skip
        for line in lines:
            log(f"  (unjudged) {line}")
        return lines
    log("\n== Verdict against issue 19 (serving at the hardware's pace) ==")
    for line in lines:
        log(f"- {line}")
    return lines
