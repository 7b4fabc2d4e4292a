"""The serving cost of scoring candidates with the live pCTR and pCVR models (serving.scoring).

Run: .venv/bin/python bench/scoring_cost.py [--line-items 10000] [--weights 50000]

A model of `--weights` non-zero weights (2**18 slots) and `--line-items` CPC line items of
two creatives each; a request with a country, device, OS, channel, three categories and
five keywords. Prints microseconds for the request's part (every hash of the request, once)
and per candidate scored (`model_ecpm`: look-ups, one `exp` per creative, the eCPM as an
exact Decimal), once the per-model caches are warm as they are after the first requests,
and for the first request that meets each line item (caches cold). In process, no I/O.

Then the same line items as target-CPA CPM line items, in the same run: scored with the
pCTR model and the smoothed pCVR (the baseline: no pCVR model live), and with a pCVR model
of as many weights live too (a second request part, a second sum and `exp` per creative).
"""

import argparse
import dataclasses
import random
import sys
import timeit
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--line-items", type=int, default=10_000)
    parser.add_argument("--weights", type=int, default=50_000)
    args = parser.parse_args()

    import msgspec

    from serving.context import AdContext, DeviceInfo, Geo, Imp
    from serving.index import Candidate
    from serving.pctr import FEATURE_SET, CtrModel
    from serving.scoring import ModelScorer, RequestScores, model_ecpm
    from serving.snapshot import CreativeSnap, LineItemSnap

    rng = random.Random(7)
    bits = 18
    slots = rng.sample(range(1 << bits), args.weights)
    model = CtrModel(
        1, FEATURE_SET, bits, -5.0, slots, [rng.gauss(0, 0.3) for _ in slots],
        line_item_ctr={i: rng.gauss(0, 0.2) for i in range(1, args.line_items + 1)},
        creative_ctr={i: rng.gauss(0, 0.2) for i in range(1, 2 * args.line_items + 1)},
        numeric_weights=(0.8, 0.6), base_ctr=0.004,
    )  # fmt: skip
    candidates = []
    for i in range(1, args.line_items + 1):
        creatives = tuple(
            CreativeSnap(id=2 * i - k, size="300x250", markup="", click_url="") for k in (1, 0)
        )
        li = LineItemSnap(
            id=i, campaign_id=1, advertiser_id=1, bid=Decimal("0.75"), sizes=["300x250"],
            start=0, end=None, creative_ids=[c.id for c in creatives], creative_weights=[1, 1],
            bid_type="cpc", predicted_ctr=0.002, ctr_ceiling=0.05,
        )  # fmt: skip
        ecpm = Decimal("37.5000")
        candidates.append(Candidate(li, ecpm, "300x250", creatives, (1, 1), (2, -ecpm, i), False))
    ctx = AdContext(
        request_id="r", source="v1", placement_key="k", imps=[Imp(id="1", sizes=("300x250",))],
        geo=Geo(country="US", region="US-CA"), device=DeviceInfo(devicetype=4, os="iOS"),
        channel="APP", content_categories=("IAB1", "IAB12", "IAB19"),
        keywords=("shoes", "running", "sale", "summer", "trail"), now=1_800_000_000.0,
    )  # fmt: skip

    cold_scorer = ModelScorer(model)
    cold = RequestScores(cold_scorer, ctx, 7, True)
    cold.base  # noqa: B018 - the request part, not timed here
    started = timeit.default_timer()
    for c in candidates:
        model_ecpm(c, c.creatives, c.weights, cold)
    cold_us = (timeit.default_timer() - started) / len(candidates) * 1e6

    def scores_for(scorer: ModelScorer, cvr: ModelScorer | None) -> RequestScores:
        scores = RequestScores(scorer, ctx, 7, True)
        if cvr is not None:
            scores.cvr = RequestScores(cvr, ctx, 7, True)
        return scores

    def measure(
        sample: list[Candidate], scorer: ModelScorer, cvr: ModelScorer | None
    ) -> tuple[float, float]:
        """(request part, per candidate) in µs, caches warm."""
        warm = scores_for(scorer, cvr)
        for c in sample:
            model_ecpm(c, c.creatives, c.weights, warm)

        def request_part() -> float:
            scores = scores_for(scorer, cvr)
            return scores.base + (scores.cvr.base if scores.cvr is not None else 0.0)

        def score_scan() -> None:
            scores = scores_for(scorer, cvr)
            for c in sample:
                model_ecpm(c, c.creatives, c.weights, scores)

        rounds = 2000
        request_us = min(timeit.repeat(request_part, number=rounds, repeat=5)) / rounds * 1e6
        scan_us = min(timeit.repeat(score_scan, number=50, repeat=5)) / 50 * 1e6
        return request_us, (scan_us - request_us) / len(sample)

    scorer = ModelScorer(model)
    request_us, per_candidate = measure(candidates[:200], scorer, None)
    # The same line items as CPM line items of a target-CPA campaign (20.00 a conversion).
    cpa_fields: dict[str, Any] = {
        "bid_type": "cpm", "bid": Decimal("5.00"), "bid_micros": 5_000_000, "pcvr": 0.05,
        "target_cpa": Decimal("20.00"), "target_cpa_micros": 20_000_000, "ctr_ceiling": 0.0,
    }  # fmt: skip
    cpa = [
        dataclasses.replace(
            c,
            line_item=msgspec.structs.replace(c.line_item, **cpa_fields),
            ecpm=Decimal("5.0000"),
        )
        for c in candidates[:200]
    ]
    cvr_model = msgspec.structs.replace(
        model, version=2, bias=-3.0, weights=[rng.gauss(0, 0.3) for _ in slots]
    )
    smoothed_request, smoothed_per = measure(cpa, ModelScorer(model), None)
    cvr_request, cvr_per = measure(cpa, ModelScorer(model), ModelScorer(cvr_model))
    print(f"model: {args.weights} weights, {args.line_items} CPC line items x 2 creatives")
    print(f"request part (hashes of the context, once):  {request_us:6.2f} us")
    print(f"per candidate, caches warm (2 creatives):     {per_candidate:6.2f} us")
    print(f"per candidate, first sight (caches cold):     {cold_us:6.2f} us")
    print("target-CPA line items (2 creatives), caches warm, same run:")
    print(f"  pCTR model, smoothed pCVR: request part {smoothed_request:6.2f} us, "
          f"per candidate {smoothed_per:6.2f} us")  # fmt: skip
    print(f"  pCTR and pCVR models live: request part {cvr_request:6.2f} us, "
          f"per candidate {cvr_per:6.2f} us")  # fmt: skip


if __name__ == "__main__":
    main()
