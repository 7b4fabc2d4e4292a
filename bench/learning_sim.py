"""The learning loop end to end in a simulated world, through the real serving app.

Run: .venv/bin/python bench/learning_sim.py [--requests 6000] [--seed 7]

The world: one placement; `LINE_ITEMS` CPC line items bidding the same 1.00 a click, two
creatives each (equal weights); requests from four countries and three device types. A
hidden ground truth decides each click: `sigmoid(BASE + line item + creative + country +
device)`, each effect drawn from the seed (the model's features can express it; the
smoothed-CTR baseline knows the line item and creative, not the context).

1. Day 1, the constant CTR: every line item's eCPM is the same (bid x SERVING_DEFAULT_CTR),
   so the auction's tie-break picks one uniformly (propensity 1/4) and rotation picks the
   creative (1/2). `--requests` ad requests go through `ServingApp` (ASGI, in process), the
   impression URL is fetched for each ad and the click URL when the truth says so; the
   events go through the real telemetry writer into Parquet.
2. The first 60 % of day 1 trains a model (`reporting.learning.train`), the last 40 % is
   held out (`reporting.learning.evaluate`: log-loss and AUC against the constant and the
   smoothed-CTR baselines); the promotion rule decides and the version is promoted
   (`reporting.learning.registry.promote`), and the snapshot republished.
3. Before day 2, an IPS estimate of what the model's policy would do, from the held-out
   logs: serving with the model picks the line item of highest bid x pCTR (the creative is
   still drawn by weight, the same under both policies, so it cancels), and the logs picked
   each line item with probability 1/4; the revenue of a matched click is what the model's
   second price would charge for it.
4. Day 2: as many requests again, with the model live. The real CTR and RPM of both days,
   the lifts, and the IPS estimates beside them.

Bounded: `--max-seconds` per day. Every draw comes from `--seed` (the server's request ids
are its own, so the auction's tie-breaks differ between runs).
"""

import argparse
import asyncio
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

from bench.common import django_bench  # noqa: E402

LINE_ITEMS = 4
HOLDOUT_AT = 0.6  # the share of day 1 (by time) trained on; the rest is held out
BID = Decimal("1.00")  # a click
BASE = -3.2
COUNTRIES = ("US", "CA", "BR", "MX")
DEVICES = (2, 4, 5)
DEVICE_EFFECT = {2: 0.0, 4: 0.4, 5: -0.3}
BROWSER = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)


@dataclass
class Truth:
    """The hidden CTR function, drawn once from the seed."""

    line_item: dict[int, float]
    creative: dict[int, float]
    country: dict[str, float]

    def ctr(self, li: int, cr: int, country: str, device: int) -> float:
        z = BASE + self.line_item[li] + self.creative[cr] + self.country[country]
        return 1 / (1 + math.exp(-(z + DEVICE_EFFECT[device])))


@dataclass
class Day:
    requests: int = 0
    impressions: int = 0
    clicks: int = 0
    revenue: Decimal = Decimal(0)  # what the clicks were charged, platform currency
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    ended: datetime | None = None

    @property
    def ctr(self) -> float:
        return self.clicks / self.impressions if self.impressions else 0.0

    @property
    def rpm(self) -> float:
        return float(self.revenue) / self.impressions * 1000 if self.impressions else 0.0


async def serve_day(
    key: str, truth: Truth, requests: int, rng: random.Random, max_seconds: float
) -> Day:
    import httpx

    from serving.app import ServingApp, ServingConfig

    day = Day()
    app = ServingApp(ServingConfig.from_settings())
    await app.startup()
    deadline = time.monotonic() + max_seconds
    clicked: list[str] = []
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://ads.test", headers={"user-agent": BROWSER}
        ) as client:
            for _ in range(requests):
                if time.monotonic() > deadline:
                    break
                country, device = rng.choice(COUNTRIES), rng.choice(DEVICES)
                body = {
                    "placement": key,
                    "slots": [{"id": "top", "sizes": ["300x250"]}],
                    "device": {"ua": BROWSER, "devicetype": device, "geo": {"country": country}},
                }
                answer = await client.post("/v1/ad", json=body)
                day.requests += 1
                if answer.status_code != 200:
                    continue
                [d] = answer.json()["decisions"]
                await client.get(d["impression_url"])
                day.impressions += 1
                if rng.random() < truth.ctr(d["line_item"], d["creative"], country, device):
                    await client.get(d["click_url"], follow_redirects=False)
                    day.clicks += 1
                    clicked.append(d["id"])
    finally:
        await app.shutdown()
    day.ended = datetime.now(UTC)
    day.revenue = click_revenue(set(clicked))
    return day


def click_revenue(decisions: set[str]) -> Decimal:
    """What the stream says the clicks of `decisions` were charged (billionths)."""
    from django.conf import settings
    from django_redis import get_redis_connection

    from serving.events import decode_events
    from serving.keys import RedisKeys

    client = get_redis_connection("default")
    total = 0
    for _, fields in client.xrange(RedisKeys(settings.REDIS_KEY_PREFIX).events):
        for e in decode_events(fields[b"v"]):
            if e.t == "clk" and e.d in decisions:
                total += e.cpm
    return Decimal(total) / Decimal(1_000_000_000)


def model_policy(
    model: Any,
    rows: list[dict[str, Any]],
    creatives: dict[int, list[int]],
    ceilings: dict[int, float],
) -> list[tuple[int, float]]:
    """Per held-out row: the line item serving with `model` would pick, and what a click
    on it would be charged (second price over its pCTR, never above the bid)."""
    from serving.pctr import Scorer

    scorer = Scorer(model)
    out = []
    for r in rows:
        context = scorer.context_sum(r)
        bids = []
        for li, crs in creatives.items():
            pctr = sum(scorer.predict(context, r["placement"], li, cr) for cr in crs) / len(crs)
            pctr = min(pctr, ceilings.get(li, 1.0))
            bids.append((float(BID) * pctr * 1000, pctr, li))
        bids.sort(reverse=True)
        (top, pctr, li), (second, _, _) = bids[0], bids[1]
        clearing = min(top, second + 0.01)
        out.append((li, min(float(BID), clearing / (pctr * 1000))))
    return out


def ips(rows: list[dict[str, Any]], picks: list[tuple[int, float]]) -> dict[str, float]:
    """IPS and SNIPS of CTR and RPM of the model's picks; logged line items were uniform."""
    n, propensity = len(rows), 1 / LINE_ITEMS
    w_sum = ctr_sum = rev_sum = 0.0
    for r, (li, price) in zip(rows, picks, strict=True):
        if r["line_item"] != li:
            continue
        w = 1 / propensity
        w_sum += w
        ctr_sum += w * bool(r["clicked"])
        rev_sum += w * bool(r["clicked"]) * price
    return {
        "ips_ctr": ctr_sum / n,
        "snips_ctr": ctr_sum / w_sum if w_sum else 0.0,
        "ips_rpm": rev_sum / n * 1000,
        "snips_rpm": rev_sum / w_sum * 1000 if w_sum else 0.0,
        "match_share": sum(r["line_item"] == li for r, (li, _) in zip(rows, picks, strict=True))
        / max(1, n),
    }


def row(name: str, ctr: float, rpm: float, ctr0: float = 0.0, rpm0: float = 0.0) -> None:
    lifts = f"{lift(ctr, ctr0):>11}{lift(rpm, rpm0):>11}" if ctr0 else ""
    print(f"{name:<30}{ctr:>9.4f}{rpm:>9.2f}{lifts}")


def lift(new: float, old: float) -> str:
    return f"{(new / old - 1) * 100:+.1f} %" if old else "n/a"


def simulate(args: argparse.Namespace) -> None:
    from django.conf import settings

    from campaigns import services
    from campaigns.models import BidType
    from campaigns.snapshot import publish_snapshot, read_snapshot, redis_client, redis_keys
    from reporting.learning.dataset import Window, load_examples
    from reporting.learning.evaluate import evaluate
    from reporting.learning.registry import promote
    from reporting.learning.services import promotion_verdict
    from reporting.learning.train import TrainingParams, train
    from reporting.models import ModelKind, ModelVersion
    from reporting.telemetry.writer import write_telemetry
    from serving.pctr import encode_model
    from tests.factories import make_campaign, make_line_item, make_placement

    started = time.monotonic()
    rng = random.Random(args.seed)
    placement = make_placement()
    campaign = make_campaign(daily_budget=Decimal("1000000"))
    line_items = []
    for _ in range(LINE_ITEMS):
        li = make_line_item(campaign, str(BID))
        services.update_line_item(li, bid_type=BidType.CPC, click_url="https://shop.example/")
        extra = make_line_item(campaign, str(BID))  # a second creative: borrowed, then dropped
        moved = extra.assignments.get()
        moved.line_item = li
        moved.save()
        extra.delete()
        line_items.append(li)
    creatives = {
        li.pk: sorted(li.assignments.values_list("creative_id", flat=True)) for li in line_items
    }
    truth = Truth(
        line_item={li: rng.gauss(0, 0.45) for li in creatives},
        creative={cr: rng.gauss(0, 0.3) for crs in creatives.values() for cr in crs},
        country={c: rng.gauss(0, 0.5) for c in COUNTRIES},
    )
    publish_snapshot()

    day1 = asyncio.run(serve_day(placement.key, truth, args.requests, rng, args.max_seconds))
    while write_telemetry().read:
        pass
    assert day1.ended is not None
    split = day1.started + (day1.ended - day1.started) * HOLDOUT_AT
    train_rows = load_examples(Window(day1.started.replace(microsecond=0), split))
    held = load_examples(Window(split, day1.ended + timedelta(seconds=1)))
    params = TrainingParams(bits=16, compare_lightgbm=False)
    trained = train(train_rows, params)
    evaluation = evaluate(
        trained.model, train_rows, held, default_ctr=settings.SERVING_DEFAULT_CTR,
        prior_strength=params.prior_strength,
    )  # fmt: skip
    go, why = promotion_verdict(evaluation)
    version = ModelVersion.objects.create(
        kind=ModelKind.PCTR, feature_set=trained.model.feature_set,
        train_start=day1.started, train_end=split, holdout_start=split, holdout_end=day1.ended,
        metrics={"training": trained.info, "evaluation": evaluation,
                 "verdict": {"promote": go, "why": why}},
        weights=encode_model(trained.model),
    )  # fmt: skip
    if go:
        promote(version)
    snapshot_version = publish_snapshot()
    snapshot = read_snapshot(redis_client(), redis_keys(), snapshot_version)
    assert snapshot is not None
    ceilings = {li.id: li.ctr_ceiling for li in snapshot.line_items if li.ctr_ceiling}
    live = ModelVersion.objects.live().first()
    estimate = ips(held, model_policy(version.model(), held, creatives, ceilings))
    logged_ctr = sum(bool(r["clicked"]) for r in held) / max(1, len(held))
    logged_rpm = sum(r["revenue_nanos"] for r in held) / 1e9 / max(1, len(held)) * 1000

    day2 = Day()
    if live is not None:
        day2 = asyncio.run(serve_day(placement.key, truth, args.requests, rng, args.max_seconds))

    print(
        f"world: {LINE_ITEMS} CPC line items x 2 creatives, bid {BID} a click, "
        f"{len(COUNTRIES)} countries x {len(DEVICES)} device types, seed {args.seed}"
    )
    print(
        f"day 1 (constant CTR): {day1.requests} requests, {day1.impressions} impressions, "
        f"{day1.clicks} clicks"
    )
    print(f"training rows {len(train_rows)}, held out {len(held)} ({evaluation['clicks']} clicks)")
    print(f"\n{'held out (day 1, last 40 %)':<30}{'log-loss':>10}{'AUC':>8}{'pred/obs':>10}")
    for name in ("constant", "smoothed", "model"):
        s = evaluation[name]
        print(f"{name:<30}{s['log_loss']:>10.4f}{s['auc'] or 0:>8.3f}{s['calibration']:>10.2f}")
    print(f"\npromotion: {'promoted' if go else 'not promoted: no day 2'} ({why})")
    print(f"\n{'':<30}{'CTR':>9}{'RPM':>9}{'CTR lift':>11}{'RPM lift':>11}")
    row("logged (held out)", logged_ctr, logged_rpm)
    row("IPS, model policy", estimate["ips_ctr"], estimate["ips_rpm"], logged_ctr, logged_rpm)
    row("SNIPS, model policy", estimate["snips_ctr"], estimate["snips_rpm"], logged_ctr, logged_rpm)
    row("day 1, real (constant CTR)", day1.ctr, day1.rpm)
    if live is not None:
        row("day 2, real (model live)", day2.ctr, day2.rpm, day1.ctr, day1.rpm)
        real_ctr_lift, real_rpm_lift = day2.ctr / day1.ctr - 1, day2.rpm / day1.rpm - 1
        ips_ctr_lift = estimate["ips_ctr"] / logged_ctr - 1
        ips_rpm_lift = estimate["ips_rpm"] / logged_rpm - 1
        print(
            f"\nIPS lift vs real lift: CTR {ips_ctr_lift:+.1%} vs {real_ctr_lift:+.1%}, "
            f"RPM {ips_rpm_lift:+.1%} vs {real_rpm_lift:+.1%}; IPS level vs day 2's: "
            f"CTR {estimate['ips_ctr'] / day2.ctr - 1:+.1%}, "
            f"RPM {estimate['ips_rpm'] / day2.rpm - 1:+.1%}"
        )
    print(f"\n(match share {estimate['match_share']:.2f}; day 2: {day2.requests} requests, "
          f"{day2.impressions} impressions, {day2.clicks} clicks; "
          f"{time.monotonic() - started:.0f} s)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=6000, help="per day")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--max-seconds", type=float, default=100.0, help="per day")
    args = parser.parse_args()
    # Loopback clients and instant clicks are what invalid-traffic filtering exists to drop.
    os.environ["IVT_ENABLED"] = "false"
    with django_bench("learning"):
        simulate(args)


if __name__ == "__main__":
    main()
