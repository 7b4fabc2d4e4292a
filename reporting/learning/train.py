"""Fitting the pCTR model: logistic regression on hashed features, calibrated (Platt) on the
latest part of the training window, with smoothed CTRs per line item and creative for cold
start; LightGBM is fitted on the same features as a measured challenger (docs/learning.md)."""

import math
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from serving.pctr import (
    FEATURE_SET,
    CtrModel,
    Scorer,
    candidate_features,
    context_features,
    hashed,
)

Row = dict[str, Any]
# The share of the training window (its latest rows) kept aside to calibrate on.
CALIBRATION_SHARE = 0.2


@dataclass(frozen=True)
class TrainingParams:
    bits: int = 18
    c: float = 1.0  # inverse L2 strength (scikit-learn's C)
    prior_strength: float = 100.0  # impressions' worth of the window's CTR in the smoothing
    compare_lightgbm: bool = True
    lightgbm_min_gain: float = 0.02  # relative log-loss gain LightGBM needs to be preferred


@dataclass
class Trained:
    model: CtrModel
    info: dict[str, Any] = field(default_factory=dict)


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def smoothed_ctr_offsets(
    rows: Sequence[Row], key: str, prior_strength: float, label: str = "clicked"
) -> tuple[dict[int, float], float]:
    """Per id of `key`: logit((clicks + k·ctr) / (imps + k)) - logit(ctr), and the window's ctr
    (clicks being the rows whose `label` is true: conversions, for the pCVR model's rows)."""
    imps: dict[int, int] = defaultdict(int)
    clicks: dict[int, int] = defaultdict(int)
    for r in rows:
        imps[r[key]] += 1
        clicks[r[key]] += bool(r[label])
    total = max(1, len(rows))
    ctr = (sum(clicks.values()) + 0.5) / (total + 1)
    base = _logit(ctr)
    offsets = {
        i: round(_logit((clicks[i] + prior_strength * ctr) / (n + prior_strength)) - base, 5)
        for i, n in imps.items()
    }
    return offsets, ctr


def design_matrix(
    rows: Sequence[Row],
    bits: int,
    line_item_ctr: dict[int, float],
    creative_ctr: dict[int, float],
) -> sp.csr_matrix:
    """Hashed one-hot features plus the two cold-start columns (the last two)."""
    width = 1 << bits
    indices: list[int] = []
    indptr = [0]
    data: list[float] = []
    for r in rows:
        slots = hashed(
            [
                *context_features(r),
                *candidate_features(r["placement"], r["line_item"], r["creative"]),
            ],
            bits,
        )
        indices.extend(slots)
        data.extend([1.0] * len(slots))
        indices.extend((width, width + 1))
        data.extend((line_item_ctr.get(r["line_item"], 0.0), creative_ctr.get(r["creative"], 0.0)))
        indptr.append(len(indices))
    return sp.csr_matrix(
        (np.array(data), np.array(indices), np.array(indptr)), shape=(len(rows), width + 2)
    )


def labels(rows: Sequence[Row], label: str = "clicked") -> np.ndarray:
    return np.array([1 if r[label] else 0 for r in rows])


def predict(model: CtrModel, rows: Sequence[Row]) -> np.ndarray:
    """The model's pCTR of each row, vectorised (the same sums as `serving.pctr.Scorer`)."""
    if not rows:
        return np.zeros(0)
    x = design_matrix(rows, model.bits, model.line_item_ctr, model.creative_ctr)
    w = np.zeros(x.shape[1])
    w[np.array(model.indices, dtype=np.int64)] = model.weights
    w[-2:] = model.numeric_weights
    z = x @ w + model.bias
    return np.asarray(1.0 / (1.0 + np.exp(-z)))


def _platt(z: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Scale and shift of the raw logit that best fit the calibration rows (1, 0: none)."""
    if len(set(y.tolist())) < 2:
        return 1.0, 0.0
    fit = LogisticRegression(C=1e6, solver="lbfgs").fit(z.reshape(-1, 1), y)
    return float(fit.coef_[0][0]), float(fit.intercept_[0])


def _serving_cost_us(model: CtrModel, rows: Sequence[Row]) -> float:
    """In-process µs to score one candidate with `Scorer` (context and candidate terms), the
    median of a few hundred; a figure for the record, measured on whatever machine trains."""
    scorer = Scorer(model)
    sample = list(rows[:200]) or [{"placement": 0, "line_item": 0, "creative": 0}]
    started = time.perf_counter()
    for r in sample:
        scorer.predict(scorer.context_sum(r), r["placement"], r["line_item"], r["creative"])
    return (time.perf_counter() - started) / len(sample) * 1e6


def _lightgbm(
    x_fit: sp.csr_matrix, y_fit: np.ndarray, x_cal: sp.csr_matrix, y_cal: np.ndarray
) -> dict[str, Any]:
    """LightGBM on the columns the rows use; its log-loss on the calibration rows and its
    cost to score one row in process (`Booster.predict` on one row, µs)."""
    import lightgbm

    used = np.unique(x_fit.indices)
    booster = lightgbm.LGBMClassifier(
        n_estimators=200,
        learning_rate=0.05,
        num_leaves=15,
        min_child_samples=50,
        # One thread: on a shared machine more threads are many times slower, not faster.
        n_jobs=1,
        verbose=-1,
    ).fit(x_fit[:, used].astype(np.float32), y_fit)
    cal = x_cal[:, used].astype(np.float32)
    p = np.asarray(booster.predict_proba(cal))[:, 1]
    one = cal[:1]
    started = time.perf_counter()
    for _ in range(50):
        booster.predict_proba(one)
    cost = (time.perf_counter() - started) / 50 * 1e6
    return {"log_loss": float(log_loss(y_cal, p, labels=[0, 1])), "cost_us": round(cost, 1)}


def train(rows: Sequence[Row], params: TrainingParams, label: str = "clicked") -> Trained:
    """Fit on the training window's rows (oldest first); calibrate on its latest share. The
    label is `clicked` (pCTR: impressions) or `converted` (pCVR: clicks, `learning.pcvr`)."""
    cut = max(1, int(len(rows) * (1 - CALIBRATION_SHARE)))
    fit_rows, cal_rows = rows[:cut], rows[cut:]
    strength = params.prior_strength
    li_ctr, window_ctr = smoothed_ctr_offsets(fit_rows, "line_item", strength, label)
    cr_ctr, _ = smoothed_ctr_offsets(fit_rows, "creative", strength, label)
    x_fit = design_matrix(fit_rows, params.bits, li_ctr, cr_ctr)
    y_fit = labels(fit_rows, label)
    if len(set(y_fit.tolist())) < 2:
        raise ValueError(f"the training window needs rows with and without `{label}`")
    # The intercept is penalised like any weight under liblinear; Platt scaling below
    # corrects the bias that leaves.
    lr = LogisticRegression(C=params.c, solver="liblinear", max_iter=200).fit(x_fit, y_fit)
    coef = lr.coef_[0]
    bias = float(lr.intercept_[0])
    x_cal, y_cal = design_matrix(cal_rows, params.bits, li_ctr, cr_ctr), labels(cal_rows, label)
    raw = np.asarray(x_cal @ coef + bias)
    scale, shift = _platt(raw, y_cal) if cal_rows else (1.0, 0.0)
    # Compared with LightGBM before calibration, like for like (neither is calibrated then).
    raw_loss = float(log_loss(y_cal, 1 / (1 + np.exp(-raw)), labels=[0, 1])) if cal_rows else None
    coef, bias = coef * scale, bias * scale + shift
    nonzero = np.flatnonzero(np.abs(coef[:-2]) > 1e-6)
    model = CtrModel(
        version=0,
        feature_set=FEATURE_SET,
        bits=params.bits,
        bias=round(bias, 6),
        indices=nonzero.tolist(),
        weights=[round(float(w), 6) for w in coef[nonzero]],
        line_item_ctr=li_ctr,
        creative_ctr=cr_ctr,
        numeric_weights=(round(float(coef[-2]), 6), round(float(coef[-1]), 6)),
        base_ctr=round(window_ctr, 6),
    )
    info: dict[str, Any] = {
        "label": label,
        "rows": len(rows),
        "fit_rows": len(fit_rows),
        "calibration_rows": len(cal_rows),
        "window_ctr": round(window_ctr, 6),
        "platt": [round(scale, 4), round(shift, 4)],
        "weights": len(model.indices),
        "logistic": {
            "log_loss": raw_loss,
            "cost_us": round(_serving_cost_us(model, rows), 1),
        },
    }
    info["chosen"], info["why"] = "logistic", "LightGBM not compared (LEARNING_COMPARE_LIGHTGBM)"
    if params.compare_lightgbm and cal_rows and len(set(y_cal.tolist())) == 2:
        gbm = info["lightgbm"] = _lightgbm(x_fit, y_fit, x_cal, y_cal)
        gain = 1 - gbm["log_loss"] / raw_loss if raw_loss else 0.0
        info["lightgbm"]["gain"] = round(gain, 4)
        # Serving scores in process from the snapshot: a logistic model is a sum of a few
        # weights; trees need a tree scorer serving does not have. LightGBM would have to
        # earn that with a clear gain, and even then it is recorded, not served.
        if gain >= params.lightgbm_min_gain:
            info["why"] = (
                f"LightGBM's calibration log-loss is {gain:.1%} lower, but serving has no "
                "in-process tree scorer: kept logistic (see the costs)"
            )
        else:
            info["why"] = (
                f"LightGBM's calibration log-loss gain {gain:.1%} is below "
                f"{params.lightgbm_min_gain:.0%}; logistic costs {info['logistic']['cost_us']} µs"
                f" per candidate vs {gbm['cost_us']} µs"
            )
    return Trained(model, info)
