"""The pCVR model: conversions per click, trained where conversions exist (docs/learning.md).

An example is a click: one of the pCTR model's examples (an impression of ours) that was
clicked. Its label, `converted`, says whether an attributed **post-click** conversion names
its decision in the `conversions` telemetry files (joined by decision id) within
`LEARNING_CONVERSION_LAG_HOURS` of the decision. Post-view conversions are left out: they
follow impressions without a click, which a rate per click cannot hold, and serving's
`target CPA x pCTR x pCVR` counts the conversions that come through clicks.

Both windows end `LEARNING_CONVERSION_LAG_HOURS` before the run, so every click in them has
had the whole lag to convert (a click of the last hour would otherwise look unconverted).
The features are the pCTR model's (`serving.pctr`: hashed context, the personal region only
where consent allowed it, line item, creative), with the line item's and creative's smoothed
conversion rates (`LEARNING_PRIOR_CLICKS` clicks' worth of the window's) as cold-start
terms; fitted, calibrated and stored as a pCTR model is (`reporting.learning.train`), with
`ModelVersion.kind = pcvr`. Fewer than `LEARNING_MIN_CONVERSIONS` converted clicks in the
training window: no model, and the job's result says so.

Held out on the later window against two baselines: the constant (the training window's
conversions per click) and the smoothed CVR of the line item (what serving uses while no
pCVR model is live, there from the rollups). Promoted by the pCTR model's rule: it must beat
both, and the live pCVR model on the same clicks.
"""

import dataclasses
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from django.conf import settings
from django.utils import timezone

from reporting.learning.dataset import Window, load_examples, read_dataset, windows
from reporting.learning.evaluate import scores
from reporting.learning.services import record_version, training_params
from reporting.learning.train import Row, labels, predict, smoothed_ctr_offsets, train
from reporting.models import ModelKind, ModelVersion
from reporting.telemetry.schema import CONVERSIONS
from serving.pctr import CtrModel, sigmoid

log = logging.getLogger(__name__)

LABEL = "converted"


@dataclass(frozen=True)
class PcvrRun:
    """What a run did: the version trained (None: none), and why (or why not)."""

    version: ModelVersion | None
    note: str


def _first_conversions(start: datetime, end: datetime) -> dict[str, int]:
    """Decision id -> the time (epoch ms) of its first post-click conversion in [start, end)."""
    table = read_dataset("conversions", CONVERSIONS, start, end + timedelta(hours=1))
    table = table.filter(pc.equal(table["attribution"], "post_click"))
    first: dict[str, int] = {}
    ids = table["decision_id"].to_pylist()
    times = table["ts"].cast(pa.int64()).to_pylist()
    for decision, ts in zip(ids, times, strict=True):
        if decision not in first or ts < first[decision]:
            first[decision] = ts
    return first


def load_click_examples(window: Window, lag: timedelta) -> list[Row]:
    """The window's clicks, oldest first, each with `converted` (post-click, within `lag`)."""
    clicks = [r for r in load_examples(window) if r["clicked"]]
    first = _first_conversions(window.start, window.end + lag)
    lag_ms = lag.total_seconds() * 1000
    for r in clicks:
        at = first.get(r["decision_id"])
        r[LABEL] = at is not None and at - r["ts_ms"] <= lag_ms
    return clicks


def evaluate_pcvr(
    model: CtrModel,
    train_rows: list[Row],
    rows: list[Row],
    *,
    prior_strength: float,
    live: CtrModel | None = None,
) -> dict[str, Any]:
    """Held-out clicks: the model, the constant and the smoothed-CVR baselines (and the live
    pCVR model) on log-loss, AUC and calibration (predicted over observed conversions)."""
    y = labels(rows, LABEL)
    by_line_item, rate = smoothed_ctr_offsets(train_rows, "line_item", prior_strength, LABEL)
    base = float(np.log(rate / (1 - rate)))
    smoothed = np.array([sigmoid(base + by_line_item.get(r["line_item"], 0.0)) for r in rows])
    out: dict[str, Any] = {
        "rows": len(rows),
        "conversions": int(y.sum()),
        "model": scores(y, predict(model, rows)),
        "constant": scores(y, np.full(len(rows), rate)),
        "smoothed": scores(y, smoothed),
    }
    if live is not None:
        out["live"] = {"version": live.version, **scores(y, predict(live, rows))}
    return out


def run_pcvr_learning(now: datetime | None = None, *, auto_promote: bool | None = None) -> PcvrRun:
    """Train a pCVR candidate where the clicks led to enough conversions, evaluate it on the
    later window, and promote it when it beats the baselines and the live pCVR model."""
    now = now or timezone.now()
    auto = settings.LEARNING_AUTO_PROMOTE if auto_promote is None else auto_promote
    lag = timedelta(hours=settings.LEARNING_CONVERSION_LAG_HOURS)
    train_window, holdout = windows(
        now - lag, settings.LEARNING_TRAIN_DAYS, settings.LEARNING_HOLDOUT_DAYS
    )
    train_rows = load_click_examples(train_window, lag)
    conversions = sum(1 for r in train_rows if r[LABEL])
    minimum = settings.LEARNING_MIN_CONVERSIONS
    if conversions < minimum:
        note = (
            f"no pCVR model trained: {conversions} post-click conversions of "
            f"{len(train_rows)} clicks in {train_window}, fewer than "
            f"LEARNING_MIN_CONVERSIONS ({minimum})"
        )
        log.info(note)
        return PcvrRun(None, note)
    held = load_click_examples(holdout, lag)
    if conversions == len(train_rows) or not held:
        note = (
            f"no pCVR model trained: every click of {train_window} converted"
            if held
            else f"no pCVR model trained: no clicks held out in {holdout}"
        )
        log.info(note)
        return PcvrRun(None, note)
    params = dataclasses.replace(training_params(), prior_strength=settings.LEARNING_PRIOR_CLICKS)
    trained = train(train_rows, params, LABEL)
    live = ModelVersion.objects.live(ModelKind.PCVR).first()
    evaluation = evaluate_pcvr(
        trained.model,
        train_rows,
        held,
        prior_strength=params.prior_strength,
        live=live.model() if live is not None else None,
    )
    version, why = record_version(
        ModelKind.PCVR,
        trained,
        train_window,
        holdout,
        {**trained.info, "conversions": conversions},
        evaluation,
        auto=auto,
    )
    return PcvrRun(version, why)
