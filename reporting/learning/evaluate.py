"""Offline evaluation on the held-out later window (docs/learning.md).

Every model is scored on rows it never saw, later than its training window: log-loss, AUC
and calibration (predicted over observed clicks, and reliability buckets), side by side with
two baselines, the constant `SERVING_DEFAULT_CTR` and the smoothed CTR of the creative (else
its line item, else the window's), both from the same training window. Then off-policy
estimates of the model's ranking: the logs randomise one choice, the creative among the
winning line item's (weighted rotation, `propensity` in the files), so IPS and
self-normalised IPS estimate the CTR and RPM had the model picked that creative instead.
Line-item choice is deterministic in the logs (rank by tier and eCPM): no estimator without
randomisation covers it, so the estimate is of the creative choice only.
"""

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import log_loss, roc_auc_score

from reporting.learning.train import Row, labels, predict, smoothed_ctr_offsets
from serving.pctr import CtrModel

BUCKETS = 10


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def reliability(y: np.ndarray, p: np.ndarray, buckets: int = BUCKETS) -> list[dict[str, float]]:
    """Rows in equal-count buckets of predicted CTR: mean predicted vs observed rate."""
    order = np.argsort(p, kind="stable")
    out = []
    for part in np.array_split(order, min(buckets, len(order))):
        if len(part):
            out.append(
                {
                    "n": len(part),
                    "predicted": round(float(p[part].mean()), 6),
                    "observed": round(float(y[part].mean()), 6),
                }
            )
    return out


def scores(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    """Log-loss, AUC (None with one class only), predicted/observed ratio, reliability."""
    clicks = float(y.sum())
    return {
        "log_loss": round(float(log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1])), 6),
        "auc": round(float(roc_auc_score(y, p)), 4) if 0 < clicks < len(y) else None,
        "calibration": round(float(p.sum()) / clicks, 4) if clicks else None,
        "reliability": reliability(y, p),
    }


def smoothed_baseline(
    train_rows: Sequence[Row], rows: Sequence[Row], strength: float
) -> np.ndarray:
    """The smoothed CTR of each row's creative (else line item, else the window's)."""
    by_creative, ctr = smoothed_ctr_offsets(train_rows, "creative", strength)
    by_line_item, _ = smoothed_ctr_offsets(train_rows, "line_item", strength)
    base = _logit(ctr)
    z = [base + by_creative.get(r["creative"], by_line_item.get(r["line_item"], 0.0)) for r in rows]
    return 1.0 / (1.0 + np.exp(-np.array(z)))


def creatives_by_line_item(rows: Sequence[Row]) -> dict[int, list[int]]:
    """The creatives each line item was seen showing: the choices its rotation had."""
    seen: dict[int, set[int]] = defaultdict(set)
    for r in rows:
        seen[r["line_item"]].add(r["creative"])
    return {li: sorted(c) for li, c in seen.items()}


def model_choices(
    model: CtrModel, rows: Sequence[Row], choices: dict[int, list[int]]
) -> np.ndarray:
    """The creative the model would show in each row: the highest pCTR among its line item's
    creatives (ties: the lowest id)."""
    variants = [
        {**r, "creative": c} for r in rows for c in choices.get(r["line_item"], [r["creative"]])
    ]
    p = predict(model, variants)
    picked, at = [], 0
    for r in rows:
        options = choices.get(r["line_item"], [r["creative"]])
        best = int(np.argmax(p[at : at + len(options)]))
        picked.append(options[best])
        at += len(options)
    return np.array(picked)


def off_policy(rows: Sequence[Row], chosen: np.ndarray) -> dict[str, Any]:
    """IPS and self-normalised IPS of CTR and RPM for a deterministic policy choosing
    `chosen` (a creative per row), from the logged creative and its propensity."""
    n = len(rows)
    if n == 0:
        return {}
    logged = np.array([r["creative"] for r in rows])
    propensity = np.array([max(float(r["propensity"]), 1e-6) for r in rows])
    click = labels(rows).astype(float)
    revenue = np.array([r["revenue_nanos"] / 1e9 for r in rows])  # currency per impression
    w = (logged == chosen) / propensity
    total = float(w.sum())
    return {
        "ips_ctr": round(float((w * click).sum() / n), 6),
        "snips_ctr": round(float((w * click).sum() / total), 6) if total else None,
        "ips_rpm": round(float((w * revenue).sum() / n * 1000), 6),
        "snips_rpm": round(float((w * revenue).sum() / total * 1000), 6) if total else None,
        "match_share": round(float((logged == chosen).mean()), 4),
        "effective_n": round(total**2 / float((w**2).sum()), 1) if total else 0.0,
    }


def evaluate(
    model: CtrModel,
    train_rows: Sequence[Row],
    rows: Sequence[Row],
    *,
    default_ctr: float,
    prior_strength: float,
    live: CtrModel | None = None,
) -> dict[str, Any]:
    """The evaluation a ModelVersion keeps in `metrics` (held-out `rows`)."""
    y = labels(rows)
    choices = creatives_by_line_item([*train_rows, *rows])
    revenue = np.array([r["revenue_nanos"] / 1e9 for r in rows])
    out: dict[str, Any] = {
        "rows": len(rows),
        "clicks": int(y.sum()),
        "model": scores(y, predict(model, rows)),
        "constant": scores(y, np.full(len(rows), default_ctr)),
        "smoothed": scores(y, smoothed_baseline(train_rows, rows, prior_strength)),
        "logged": {
            "ctr": round(float(y.mean()), 6),
            "rpm": round(float(revenue.mean() * 1000), 6),
        },
        "off_policy": off_policy(rows, model_choices(model, rows, choices)),
    }
    if live is not None:
        out["live"] = {
            "version": live.version,
            **scores(y, predict(live, rows)),
            "off_policy": off_policy(rows, model_choices(live, rows, choices)),
        }
    return out
