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

The pCVR model, on a second placement (`--cpa-share` of the requests, on top of the
`--requests` of the first) that only
`CPA_LINE_ITEMS` CPM line items of a target-CPA campaign (CPA 0.40) run on, bidding at most
`CPA_BID` above the placement's floor `CPA_FLOOR`. A hidden conversion function decides
whether a click converts, `sigmoid(CVR_BASE + country + device)` (the line item tells
nothing: the smoothed CVR knows only the line item), and a conversion goes through the real
pixel (`/v1/conv` with the click id the landing URL got) and the real attribution job into
the `conversions` telemetry files.
5. Clicks of days 1 and 2 (both placements; each line item's clicks convert alike) train a
   pCVR model (`reporting.learning.pcvr`: first 60 % by time), held out on the rest against
   the constant and the smoothed-CVR baselines; no model below LEARNING_MIN_CONVERSIONS.
6. Day 3: the second placement's requests again, with the pCVR model live beside the pCTR
   model. Its real conversions, CPA (spend over conversions) and conversions per 1000
   requests, beside day 2's (the pCTR model and the smoothed pCVR) in the same run.

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
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

from bench.common import django_bench  # noqa: E402

LINE_ITEMS = 4
CPA_LINE_ITEMS = 2
CPA_TARGET = Decimal("0.40")  # a conversion
CPA_BID = Decimal("40.00")  # the most a target-CPA line item bids (CPM)
CPA_FLOOR = Decimal("8.00")  # the second placement's floor
CVR_BASE = 0.0
CPA_CTR_EFFECT = 1.0  # the target-CPA line items' ads are clicked more (more conversions)
CVR_DEVICE = {2: 0.0, 4: -1.4, 5: 0.9}
LANDING = "https://shop.example/landing?clid={CLICK_ID}"
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
    country_cvr: dict[str, float]

    def ctr(self, li: int, cr: int, country: str, device: int) -> float:
        z = BASE + self.line_item[li] + self.creative[cr] + self.country[country]
        return 1 / (1 + math.exp(-(z + DEVICE_EFFECT[device])))

    def cvr(self, country: str, device: int) -> float:
        """P(a click converts): the context decides, not the line item."""
        return 1 / (1 + math.exp(-(CVR_BASE + self.country_cvr[country] + CVR_DEVICE[device])))


@dataclass
class Day:
    requests: int = 0
    impressions: int = 0
    clicks: int = 0
    conversions: int = 0
    revenue: Decimal = Decimal(0)  # what the clicks were charged, platform currency
    spend: Decimal = Decimal(0)  # what the impressions were charged (CPM line items)
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    ended: datetime | None = None

    @property
    def ctr(self) -> float:
        return self.clicks / self.impressions if self.impressions else 0.0

    @property
    def rpm(self) -> float:
        return float(self.revenue) / self.impressions * 1000 if self.impressions else 0.0

    @property
    def cpa(self) -> float:
        return float(self.spend) / self.conversions if self.conversions else float("nan")


async def serve_day(
    keys: dict[str, float],
    truth: Truth,
    requests: int,
    rng: random.Random,
    max_seconds: float,
    advertisers: dict[int, int],
) -> dict[str, Day]:
    """`requests` ad requests, each to one of `keys` (by share); impressions, clicks by the
    hidden CTR, and for a click the hidden CVR's conversions through the pixel."""
    import httpx

    from serving.app import ServingApp
    from serving.config import ServingConfig

    days = {key: Day() for key in keys}
    app = ServingApp(ServingConfig.from_settings())
    await app.startup()
    deadline = time.monotonic() + max_seconds
    shown: dict[str, list[str]] = {key: [] for key in keys}
    clicked: dict[str, list[str]] = {key: [] for key in keys}
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://ads.test", headers={"user-agent": BROWSER}
        ) as client:
            for _ in range(requests):
                if time.monotonic() > deadline:
                    break
                key = rng.choices(list(keys), list(keys.values()))[0]
                day = days[key]
                country, device = rng.choice(COUNTRIES), rng.choice(DEVICES)
                body = {
                    "placement": key,
                    "slots": [{"id": "top", "sizes": ["300x250"]}],
                    "device": {"ua": BROWSER, "devicetype": device, "geo": {"country": country}},
                }
                answer = await client.post("/v1/ad", json=body)
                day.requests += 1
                if answer.status_code != 200 or not answer.json()["decisions"]:
                    continue
                [d] = answer.json()["decisions"]
                await client.get(d["impression_url"])
                day.impressions += 1
                shown[key].append(d["id"])
                if rng.random() >= truth.ctr(d["line_item"], d["creative"], country, device):
                    continue
                landing = await client.get(d["click_url"], follow_redirects=False)
                day.clicks += 1
                clicked[key].append(d["id"])
                if rng.random() < truth.cvr(country, device):
                    clid = parse_qs(urlsplit(landing.headers["location"]).query)["clid"][0]
                    adv = advertisers[d["line_item"]]
                    await client.get(
                        f"/v1/conv?adv={adv}&event=purchase&order={d['id']}&clid={clid}"
                    )
                    day.conversions += 1
        await app.sink.drain()
    finally:
        await app.shutdown()
    for key, day in days.items():
        day.ended = datetime.now(UTC)
        day.revenue = charged("clk", set(clicked[key]))
        day.spend = charged("imp", set(shown[key]))
    return days


def charged(kind: str, decisions: set[str]) -> Decimal:
    """What the stream says the clicks (`clk`) or impressions (`imp`) of `decisions` were
    charged (billionths: a click's price, an impression's CPM in micros)."""
    from django.conf import settings
    from django_redis import get_redis_connection

    from serving.events import decode_events
    from serving.keys import RedisKeys

    client = get_redis_connection("default")
    total = 0
    for _, fields in client.xrange(RedisKeys(settings.REDIS_KEY_PREFIX).events):
        for e in decode_events(fields[b"v"]):
            if e.t == kind and e.d in decisions:
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


def settle() -> None:
    """Run the jobs on what the stream holds: attribution (conversions and their files), the
    telemetry writer, and the rollups the snapshot's smoothed CVRs read."""
    from reporting.conversions.attribution import attribute_conversions
    from reporting.ingest import ingest_events
    from reporting.telemetry.writer import write_telemetry

    while attribute_conversions().read:
        pass
    while write_telemetry().read:
        pass
    while ingest_events().read:
        pass


def world() -> tuple[Any, Any, dict[int, list[int]], list[Any], dict[int, int]]:
    """The two placements, every line item's creatives, the target-CPA line items, and
    each line item's advertiser."""
    from campaigns import services
    from campaigns.models import BidType, Campaign, GoalType
    from creatives.models import Creative
    from tests.factories import make_campaign, make_line_item, make_placement

    placement = make_placement()
    cpa_placement = make_placement(floor=CPA_FLOOR)
    campaign = make_campaign(daily_budget=Decimal("1000000"))
    cpa_campaign = make_campaign(daily_budget=Decimal("1000000"))
    Campaign.objects.filter(pk=cpa_campaign.pk).update(
        goal_type=GoalType.TARGET_CPA, goal_target=CPA_TARGET
    )
    line_items: list[Any] = []
    cpa_items: list[Any] = []
    for n in range(LINE_ITEMS + CPA_LINE_ITEMS):
        cpa = n >= LINE_ITEMS
        owner, where = (cpa_campaign, cpa_placement) if cpa else (campaign, placement)
        li = make_line_item(owner, str(CPA_BID if cpa else BID), placements=[where])
        if not cpa:
            services.update_line_item(li, bid_type=BidType.CPC, click_url="https://shop.example/")
        extra = make_line_item(owner, str(BID))  # a second creative: borrowed, then dropped
        moved = extra.assignments.get()
        moved.line_item = li
        moved.save()
        extra.delete()
        (cpa_items if cpa else line_items).append(li)
    every = [*line_items, *cpa_items]
    Creative.objects.filter(line_items__in=every).update(click_url=LANDING)
    creatives = {
        li.pk: sorted(li.assignments.values_list("creative_id", flat=True)) for li in every
    }
    advertisers = {li.pk: li.campaign.advertiser_id for li in every}
    return placement, cpa_placement, creatives, cpa_items, advertisers


def train_pcvr(
    start: datetime, end: datetime, params: Any
) -> tuple[Any, dict[str, Any] | None, str, int]:
    """Train and evaluate a pCVR model on the clicks of [start, end); promote it when the
    rule says so. (version or None, evaluation, why, training conversions)."""
    import dataclasses

    from django.conf import settings

    from reporting.learning.dataset import Window
    from reporting.learning.pcvr import LABEL, evaluate_pcvr, load_click_examples
    from reporting.learning.registry import promote
    from reporting.learning.services import promotion_verdict
    from reporting.learning.train import train
    from reporting.models import ModelKind, ModelVersion
    from serving.pctr import encode_model

    split = start + (end - start) * HOLDOUT_AT
    lag = timedelta(hours=1)
    rows = load_click_examples(Window(start.replace(microsecond=0), split), lag)
    held = load_click_examples(Window(split, end + timedelta(seconds=1)), lag)
    conversions = sum(bool(r[LABEL]) for r in rows)
    if conversions < settings.LEARNING_MIN_CONVERSIONS:
        why = f"{conversions} conversions < LEARNING_MIN_CONVERSIONS"
        return None, None, why, conversions
    params = dataclasses.replace(params, prior_strength=settings.LEARNING_PRIOR_CLICKS)
    trained = train(rows, params, LABEL)
    evaluation = evaluate_pcvr(trained.model, rows, held, prior_strength=params.prior_strength)
    go, why = promotion_verdict(evaluation)
    version = ModelVersion.objects.create(
        kind=ModelKind.PCVR, feature_set=trained.model.feature_set,
        train_start=start, train_end=split, holdout_start=split, holdout_end=end,
        metrics={"training": trained.info, "evaluation": evaluation,
                 "verdict": {"promote": go, "why": why}},
        weights=encode_model(trained.model),
    )  # fmt: skip
    if go:
        promote(version)
    return (version if go else None), evaluation, why, conversions


def scores_table(title: str, evaluation: dict[str, Any]) -> None:
    print(f"\n{title:<30}{'log-loss':>10}{'AUC':>8}{'pred/obs':>10}")
    for name in ("constant", "smoothed", "model"):
        s = evaluation[name]
        print(
            f"{name:<30}{s['log_loss']:>10.4f}{s['auc'] or 0:>8.3f}{s['calibration'] or 0:>10.2f}"
        )


def simulate(args: argparse.Namespace) -> None:
    from django.conf import settings

    from campaigns.snapshot import publish_snapshot, read_snapshot, redis_client, redis_keys
    from reporting.learning.dataset import Window, load_examples
    from reporting.learning.evaluate import evaluate
    from reporting.learning.registry import promote
    from reporting.learning.services import promotion_verdict
    from reporting.learning.train import TrainingParams, train
    from reporting.models import ModelKind, ModelVersion
    from serving.pctr import encode_model

    started = time.monotonic()
    rng = random.Random(args.seed)
    placement, cpa_placement, every, cpa_items, advertisers = world()
    cpa_ids = {li.pk for li in cpa_items}
    creatives = {li: crs for li, crs in every.items() if li not in cpa_ids}  # the CPC ones
    truth = Truth(
        line_item={
            li: rng.gauss(0, 0.45) + (CPA_CTR_EFFECT if li in cpa_ids else 0.0) for li in every
        },
        creative={cr: rng.gauss(0, 0.3) for crs in every.values() for cr in crs},
        country={c: rng.gauss(0, 0.5) for c in COUNTRIES},
        country_cvr={c: rng.gauss(0, 0.9) for c in COUNTRIES},
    )
    publish_snapshot()
    keys = {placement.key: 1 - args.cpa_share, cpa_placement.key: args.cpa_share}
    # `--requests` a day to the CPC placement (on average), the target-CPA one's on top.
    total = round(args.requests / (1 - args.cpa_share))

    def serve(shares: dict[str, float], requests: int) -> dict[str, Day]:
        days = asyncio.run(serve_day(shares, truth, requests, rng, args.max_seconds, advertisers))
        settle()
        return days

    day1s = serve(keys, total)
    day1, cpa1 = day1s[placement.key], day1s[cpa_placement.key]
    assert day1.ended is not None
    split = day1.started + (day1.ended - day1.started) * HOLDOUT_AT
    # Trained and evaluated on both placements' rows, as the job would; the IPS estimate is
    # of the CPC placement's line-item choice only.
    train_rows = load_examples(Window(day1.started.replace(microsecond=0), split))
    all_held = load_examples(Window(split, day1.ended + timedelta(seconds=1)))
    held = [r for r in all_held if r["placement"] == placement.pk]
    params = TrainingParams(bits=16, compare_lightgbm=False)
    trained = train(train_rows, params)
    evaluation = evaluate(
        trained.model, train_rows, all_held, default_ctr=settings.SERVING_DEFAULT_CTR,
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
    smoothed_pcvr = {li.id: li.pcvr for li in snapshot.line_items if li.target_cpa is not None}
    live = ModelVersion.objects.live().first()
    estimate = ips(held, model_policy(version.model(), held, creatives, ceilings))
    logged_ctr = sum(bool(r["clicked"]) for r in held) / max(1, len(held))
    logged_rpm = sum(r["revenue_nanos"] for r in held) / 1e9 / max(1, len(held)) * 1000

    day2, cpa2 = Day(), Day()
    cvr_version, cvr_evaluation, cvr_why, cvr_conversions = None, None, "no day 2", 0
    cpa3 = Day()
    if live is not None:
        day2s = serve(keys, total)
        day2, cpa2 = day2s[placement.key], day2s[cpa_placement.key]
        assert cpa2.ended is not None
        cvr_version, cvr_evaluation, cvr_why, cvr_conversions = train_pcvr(
            day1.started, cpa2.ended, TrainingParams(bits=16, compare_lightgbm=False)
        )
        publish_snapshot()
        if cvr_version is not None:
            cpa3 = serve({cpa_placement.key: 1.0}, total - args.requests)[cpa_placement.key]

    print(
        f"world: {LINE_ITEMS} CPC line items x 2 creatives, bid {BID} a click, "
        f"{len(COUNTRIES)} countries x {len(DEVICES)} device types, seed {args.seed}"
    )
    print(
        f"day 1 (constant CTR): {day1.requests} requests, {day1.impressions} impressions, "
        f"{day1.clicks} clicks"
    )
    print(
        f"training rows {len(train_rows)}, held out {len(all_held)} ({evaluation['clicks']} "
        f"clicks; {len(held)} rows of the CPC placement for IPS)"
    )
    scores_table("held out (day 1, last 40 %)", evaluation)
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
          f"{day2.impressions} impressions, {day2.clicks} clicks)")  # fmt: skip

    print(
        f"\npCVR: {CPA_LINE_ITEMS} target-CPA line items (CPA {CPA_TARGET}, at most {CPA_BID} "
        f"CPM) on a placement of floor {CPA_FLOOR}; {cvr_conversions} conversions in the "
        f"pCVR training window (LEARNING_MIN_CONVERSIONS {settings.LEARNING_MIN_CONVERSIONS});"
        f" smoothed pCVR on day 2: {smoothed_pcvr}"
    )
    if cvr_evaluation is not None:
        print(f"held out: {cvr_evaluation['rows']} clicks, {cvr_evaluation['conversions']} "
              "conversions")  # fmt: skip
        scores_table("pCVR held out (days 1-2, last 40 %)", cvr_evaluation)
    print(f"pCVR promotion: {'promoted' if cvr_version else 'not promoted: no day 3'} ({cvr_why})")
    print(
        f"\n{'target-CPA placement':<34}{'requests':>9}{'imps':>7}{'clicks':>7}{'conv':>6}"
        f"{'spend':>9}{'CPA':>8}{'conv/1000 req':>15}"
    )
    for name, d in (
        ("day 1 (constant CTR)", cpa1),
        ("day 2 (pCTR, smoothed pCVR)", cpa2),
        ("day 3 (pCTR and pCVR models)", cpa3),
    ):
        per = d.conversions / d.requests * 1000 if d.requests else 0.0
        print(
            f"{name:<34}{d.requests:>9}{d.impressions:>7}{d.clicks:>7}{d.conversions:>6}"
            f"{float(d.spend):>9.2f}{d.cpa:>8.3f}{per:>15.1f}"
        )
    if cpa3.requests and cpa2.conversions and cpa3.conversions:
        print(
            f"day 3 vs day 2: CPA {cpa3.cpa / cpa2.cpa - 1:+.1%}, conversions per request "
            f"{(cpa3.conversions / cpa3.requests) / (cpa2.conversions / cpa2.requests) - 1:+.1%}"
        )
    print(f"({time.monotonic() - started:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=6000, help="per day")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--max-seconds", type=float, default=150.0, help="per day")
    parser.add_argument(
        "--cpa-share", type=float, default=0.4, help="requests to the target-CPA placement"
    )
    args = parser.parse_args()
    # Loopback clients and instant clicks are what invalid-traffic filtering exists to drop.
    os.environ["IVT_ENABLED"] = "false"
    with django_bench("learning"):
        simulate(args)


if __name__ == "__main__":
    main()
