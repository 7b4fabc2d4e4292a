"""The pCVR model on the real telemetry files: clicks labelled by the post-click conversions
joined to them by decision id, a model that learns a planted CVR and beats the constant and
smoothed-CVR baselines held out, live beside the pCTR model and published in the snapshot,
and no model below LEARNING_MIN_CONVERSIONS, which the job's result says."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis import Redis

from campaigns.snapshot import publish_snapshot, read_snapshot, redis_keys
from reporting.conversions.models import Attribution, Conversion, Source
from reporting.learning.dataset import Window
from reporting.learning.pcvr import load_click_examples, run_pcvr_learning
from reporting.learning.services import run_learning
from reporting.models import ModelKind, ModelStatus, ModelVersion
from reporting.tasks import train_ctr_model_task
from tests.reporting.learning import world

NOW = datetime(2027, 3, 10, 0, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture
def small_windows(small_windows: None, settings: Any) -> None:
    """The pCTR tests' small windows (tests/reporting/learning/conftest.py), LightGBM not
    compared, and clicks convert within an hour."""
    settings.LEARNING_COMPARE_LIGHTGBM = False
    settings.LEARNING_CONVERSION_LAG_HOURS = 1


@pytest.mark.django_db
def test_clicks_are_labelled_by_their_post_click_conversions_within_the_lag(
    redis_client: Redis,
) -> None:
    slots = world.simulate(NOW - 3 * HOUR, 2, 200, seed=21)
    world.send(redis_client, slots)
    converted = world.conversions(slots, seed=22)
    clicked = [s for s in slots if s.clicked]
    unconverted = [s for s in clicked if s.decision not in {c.decision_id for c in converted}]
    # A post-view conversion and one after the lag do not make a click converted.
    late, viewed = unconverted[0], unconverted[1]
    extra = [
        Conversion(
            advertiser_id=1, event="purchase", source=Source.PIXEL, attribution=attribution,
            decision_id=slot.decision, line_item_id=slot.line_item, creative_id=slot.creative,
            converted_at=datetime.fromtimestamp(slot.ts_ms / 1000, UTC) + after,
            stream_id=f"{slot.ts_ms + 1}-0",
        )
        for slot, attribution, after in (
            (late, Attribution.CLICK, 2 * HOUR),
            (viewed, Attribution.VIEW, timedelta(minutes=5)),
        )
    ]  # fmt: skip
    world.send_conversions([*converted, *extra])

    rows = load_click_examples(Window(NOW - 3 * HOUR, NOW - HOUR), lag=HOUR)

    assert [r["decision_id"] for r in rows] == [s.decision for s in clicked]
    assert {r["decision_id"] for r in rows if r["converted"]} == {c.decision_id for c in converted}
    assert 0 < len(converted) < len(clicked)


@pytest.mark.django_db
def test_a_pcvr_model_learns_a_planted_cvr_beats_both_baselines_and_goes_live(
    redis_client: Redis, small_windows: None
) -> None:
    slots = world.simulate(world.day(NOW, 4), 96, 100, seed=1)
    world.send(redis_client, slots)
    world.send_conversions(world.conversions(slots, seed=2))

    pctr = run_learning(NOW)
    run = run_pcvr_learning(NOW)

    version = run.version
    assert version is not None and version.kind == ModelKind.PCVR, run.note
    ev, training = version.metrics["evaluation"], version.metrics["training"]
    assert training["label"] == "converted" and training["conversions"] >= 100
    assert ev["rows"] == sum(
        s.clicked for s in slots if NOW - timedelta(hours=25) <= _at(s) < NOW - HOUR
    )
    model, smoothed, constant = ev["model"], ev["smoothed"], ev["constant"]
    assert model["log_loss"] < min(smoothed["log_loss"], constant["log_loss"])
    assert model["auc"] > max(smoothed["auc"] or 0.5, 0.5) + 0.1
    assert 0.7 < model["calibration"] < 1.3
    assert (version.train_end, version.holdout_end) == (NOW - 25 * HOUR, NOW - HOUR)
    # Each kind has its own live version.
    assert pctr is not None
    assert [v.pk for v in ModelVersion.objects.filter(status=ModelStatus.LIVE)] == [
        version.pk, pctr.pk,
    ]  # fmt: skip
    snapshot = read_snapshot(redis_client, redis_keys(), publish_snapshot())
    assert snapshot is not None and snapshot.cvr_model is not None
    assert snapshot.ctr_model is not None and snapshot.ctr_model.version == pctr.pk
    assert snapshot.cvr_model.version == version.pk
    assert snapshot.cvr_model.weights == version.model().weights
    # The same clicks again: a candidate no better than the live pCVR model stays candidate.
    again = run_pcvr_learning(NOW).version
    assert again is not None and again.status == ModelStatus.CANDIDATE
    assert again.metrics["evaluation"]["live"]["version"] == version.pk
    assert f"does not beat live #{version.pk}" in again.metrics["verdict"]["why"]
    assert list(ModelVersion.objects.live(ModelKind.PCVR)) == [version]


def _at(slot: world.Slot) -> datetime:
    return datetime.fromtimestamp(slot.ts_ms / 1000, UTC)


@pytest.mark.django_db
def test_too_few_conversions_train_no_pcvr_model_and_the_jobs_result_says_so(
    redis_client: Redis, small_windows: None, settings: Any
) -> None:
    settings.LEARNING_MIN_CONVERSIONS = 10_000
    slots = world.simulate(world.day(NOW, 4), 96, 40, seed=3)
    world.send(redis_client, slots)
    world.send_conversions(world.conversions(slots, seed=4))

    result = train_ctr_model_task(NOW.isoformat())

    assert result is not None and result["pcvr"] is None
    assert result["pctr"] == ModelVersion.objects.get(kind=ModelKind.PCTR).pk
    assert result["pcvr_note"].startswith("no pCVR model trained: ")
    assert "fewer than LEARNING_MIN_CONVERSIONS (10000)" in result["pcvr_note"]
    assert not ModelVersion.objects.filter(kind=ModelKind.PCVR).exists()
