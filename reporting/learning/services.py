"""The learning job: telemetry -> dataset -> train -> evaluate -> (maybe) promote."""

import logging
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from reporting.learning.dataset import Window, load_examples, windows
from reporting.learning.evaluate import evaluate
from reporting.learning.registry import promote
from reporting.learning.train import Trained, TrainingParams, train
from reporting.models import ModelKind, ModelVersion
from serving.pctr import encode_model

log = logging.getLogger(__name__)


def training_params() -> TrainingParams:
    return TrainingParams(
        bits=settings.LEARNING_HASH_BITS,
        c=settings.LEARNING_C,
        prior_strength=settings.LEARNING_PRIOR_IMPRESSIONS,
        compare_lightgbm=settings.LEARNING_COMPARE_LIGHTGBM,
        lightgbm_min_gain=settings.LEARNING_LIGHTGBM_MIN_GAIN,
    )


def promotion_verdict(evaluation: dict[str, Any]) -> tuple[bool, str]:
    """Whether the candidate goes live, and why: its held-out log-loss must beat both
    baselines and, when a version is live, the live one's on the same rows by at least
    `LEARNING_PROMOTE_MIN_GAIN` (relative)."""
    mine = evaluation["model"]["log_loss"]
    for baseline in ("constant", "smoothed"):
        theirs = evaluation[baseline]["log_loss"]
        if mine >= theirs:
            return False, f"log-loss {mine} does not beat the {baseline} baseline's {theirs}"
    live = evaluation.get("live")
    if live is None:
        return True, f"log-loss {mine} beats both baselines; no version was live"
    bar = live["log_loss"] * (1 - settings.LEARNING_PROMOTE_MIN_GAIN)
    if mine >= bar:
        return False, (
            f"log-loss {mine} does not beat live #{live['version']}'s {live['log_loss']}"
            f" (needed below {bar:.6f})"
        )
    return True, f"log-loss {mine} beats live #{live['version']}'s {live['log_loss']}"


def record_version(
    kind: str,
    trained: Trained,
    train_window: Window,
    holdout: Window,
    training: dict[str, Any],
    evaluation: dict[str, Any],
    *,
    auto: bool,
) -> tuple[ModelVersion, str]:
    """A trained model's version row, with its windows, metrics and verdict; promoted when
    the verdict says so and promotion is automatic. Returns the row and the verdict's why."""
    go, why = promotion_verdict(evaluation)
    version = ModelVersion.objects.create(
        kind=kind,
        feature_set=trained.model.feature_set,
        train_start=train_window.start,
        train_end=train_window.end,
        holdout_start=holdout.start,
        holdout_end=holdout.end,
        metrics={
            "training": training,
            "evaluation": evaluation,
            "verdict": {"promote": go, "why": why, "auto_promote": auto},
        },
        weights=encode_model(trained.model),
    )
    log.info("%s model %s trained: %s; %s", kind, version.pk, evaluation["model"]["log_loss"], why)
    if go and auto:
        promote(version)
    return version, why


def run_learning(
    now: datetime | None = None, *, auto_promote: bool | None = None
) -> ModelVersion | None:
    """Train a pCTR candidate on the training window, evaluate it on the later window, and
    promote it when the rule says so; None when the windows hold too little to learn from."""
    now = now or timezone.now()
    auto = settings.LEARNING_AUTO_PROMOTE if auto_promote is None else auto_promote
    train_window, holdout = windows(
        now, settings.LEARNING_TRAIN_DAYS, settings.LEARNING_HOLDOUT_DAYS
    )
    train_rows = load_examples(train_window)
    held = load_examples(holdout)
    clicks = sum(1 for r in train_rows if r["clicked"])
    if (
        len(train_rows) < settings.LEARNING_MIN_ROWS
        or not clicks
        or len(held) < settings.LEARNING_MIN_HOLDOUT_ROWS
    ):
        log.warning(
            "learning skipped: %d training rows (%d clicks) in %s, %d held out in %s",
            len(train_rows), clicks, train_window, len(held), holdout,
        )  # fmt: skip
        return None
    params = training_params()
    trained = train(train_rows, params)
    live = ModelVersion.objects.live(ModelKind.PCTR).first()
    evaluation = evaluate(
        trained.model,
        train_rows,
        held,
        default_ctr=settings.SERVING_DEFAULT_CTR,
        prior_strength=params.prior_strength,
        live=live.model() if live is not None else None,
    )
    version, _ = record_version(
        ModelKind.PCTR, trained, train_window, holdout, trained.info, evaluation, auto=auto
    )
    return version
