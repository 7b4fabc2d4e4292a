"""The learning loop on the real telemetry files: examples joined by decision id, a model
that learns a planted CTR and beats the baselines held out, IPS that recovers a known CTR,
and the promotion rule."""

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from redis import Redis

from reporting.learning.dataset import Window, load_examples, windows
from reporting.learning.evaluate import off_policy
from reporting.learning.services import promotion_verdict, run_learning
from reporting.learning.train import predict
from reporting.models import ModelStatus, ModelVersion
from reporting.telemetry.writer import write_telemetry
from serving.events import Event
from serving.pctr import Scorer
from tests.reporting.learning import world
from tests.reporting.telemetry.test_writer import add

NOW = datetime(2027, 3, 10, 0, 0, tzinfo=UTC)


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


@pytest.mark.django_db
def test_examples_join_decisions_with_impressions_and_clicks_by_decision_id(
    redis_client: Redis,
) -> None:
    hour = _ms(NOW - timedelta(hours=2))
    end_of_window = _ms(NOW)

    def req(d: str, ts: int, li: int = 10, tt: int = 0) -> Event:
        return Event(t="req", ts=ts, pl=7, li=li, cp=1, adv=1, cr=101 if li else 0, d=d,
                     cs="→ contextual", tt=tt)  # fmt: skip

    def out(kind: str, d: str, ts: int, cpm: int = 0, tt: int = 0) -> Event:
        return Event(t=kind, ts=ts, pl=7, li=10, cp=1, adv=1, cr=101, d=d, cpm=cpm, tt=tt)

    add(redis_client, req("clicked", hour), out("imp", "clicked", hour + 10, cpm=2_000_000))
    add(redis_client, out("clk", "clicked", hour + 20, cpm=500_000_000))
    add(redis_client, req("shown", hour + 1), out("imp", "shown", hour + 11))
    add(redis_client, req("not-shown", hour + 2))
    add(redis_client, req("test", hour + 3, tt=1), out("imp", "test", hour + 13, tt=1))
    add(redis_client, req("unfilled", hour + 4, li=0))
    # Decided in the window's last minute, clicked after it ended: the click counts.
    late = end_of_window - 60_000
    add(redis_client, req("late", late), out("imp", "late", late + 10))
    add(redis_client, out("clk", "late", end_of_window + 600_000))
    add(redis_client, req("after", end_of_window), out("imp", "after", end_of_window + 10))
    write_telemetry()

    rows = load_examples(Window(NOW - timedelta(days=1), NOW))

    assert [(r["decision_id"], r["clicked"], r["revenue_nanos"]) for r in rows] == [
        ("clicked", True, 502_000_000),
        ("shown", False, 0),
        ("late", True, 0),
    ]
    assert {(r["line_item"], r["creative"], r["placement"]) for r in rows} == {(10, 101, 7)}


def test_windows_hold_out_the_later_days() -> None:
    train, held = windows(NOW + timedelta(minutes=42), train_days=7, holdout_days=1)

    assert (train.start, train.end, held.start, held.end) == (
        NOW - timedelta(days=8), NOW - timedelta(days=1), NOW - timedelta(days=1), NOW,
    )  # fmt: skip


@pytest.mark.django_db
def test_a_model_learns_a_planted_ctr_and_beats_both_baselines_held_out(
    redis_client: Redis, small_windows: None
) -> None:
    world.send(redis_client, world.simulate(world.day(NOW, 4), 96, 100, seed=1))

    version = run_learning(NOW)

    assert version is not None
    ev, training = version.metrics["evaluation"], version.metrics["training"]
    assert (ev["rows"], training["rows"]) == (2400, 7200)
    model, smoothed, constant = ev["model"], ev["smoothed"], ev["constant"]
    assert model["log_loss"] < smoothed["log_loss"] < constant["log_loss"]
    assert model["auc"] > smoothed["auc"] + 0.03
    assert 0.85 < model["calibration"] < 1.15
    assert len(model["reliability"]) == 10
    # The first creatives are better everywhere: the model's ranking picks them, and IPS
    # (creatives drawn at 0.5) estimates that policy's true CTR.
    target = world.best_policy_ctr()
    assert ev["off_policy"]["match_share"] == pytest.approx(0.5, abs=0.05)
    assert ev["off_policy"]["ips_ctr"] == pytest.approx(target, rel=0.15)
    assert ev["off_policy"]["snips_ctr"] == pytest.approx(target, rel=0.15)
    assert ev["off_policy"]["ips_ctr"] > ev["logged"]["ctr"]
    assert "lightgbm" in training and training["chosen"] == "logistic"
    assert version.status == ModelStatus.LIVE  # nothing was live; it beats both baselines
    # Serving's scorer gives the same pCTR as the training code's vectorised predict.
    rows = load_examples(Window(NOW - timedelta(days=1), NOW))[:50]
    scorer = Scorer(version.model())
    one_by_one = [
        scorer.predict(scorer.context_sum(r), r["placement"], r["line_item"], r["creative"])
        for r in rows
    ]
    assert one_by_one == pytest.approx(predict(version.model(), rows).tolist(), rel=1e-9)


def test_ips_on_a_uniform_random_logged_policy_recovers_a_known_ctr() -> None:
    slots = world.simulate(datetime(2027, 1, 1, tzinfo=UTC), 100, 400, seed=7)
    rows = [
        {
            "creative": s.creative,
            "propensity": 0.5,
            "clicked": s.clicked,
            "revenue_nanos": world.CPC_PRICE_NANOS * s.clicked
            if s.line_item == 10
            else world.CPM_MICROS,
        }
        for s in slots
    ]
    always_first = np.array([world.CREATIVES[s.line_item][0] for s in slots])

    estimate = off_policy(rows, always_first)

    target = world.best_policy_ctr()
    logged = sum(s.clicked for s in slots) / len(slots)
    assert abs(logged - target) > 0.02  # the naive mean is far from the policy's CTR...
    assert estimate["ips_ctr"] == pytest.approx(target, abs=0.005)  # ...IPS is not
    assert estimate["snips_ctr"] == pytest.approx(target, abs=0.005)
    rpm = 1000 * (0.5 * target * 0.5 + 0.5 * 0.002)  # half CPC at 0.50, half at 2.00 CPM
    assert estimate["ips_rpm"] == pytest.approx(rpm, rel=0.05)
    assert estimate["snips_rpm"] == pytest.approx(rpm, rel=0.05)


@pytest.mark.django_db
def test_a_model_that_evaluates_worse_than_the_live_one_is_not_promoted(
    redis_client: Redis, small_windows: None, settings: Any
) -> None:
    settings.LEARNING_COMPARE_LIGHTGBM = False
    world.send(redis_client, world.simulate(world.day(NOW, 4), 96, 50, seed=2))
    first = run_learning(NOW)
    assert first is not None and first.status == ModelStatus.LIVE
    # Four days later: trained on days where the first creatives were the WORSE ones, held
    # out on a day where they are better again.
    later = NOW + timedelta(days=4)
    world.send(redis_client, world.simulate(world.day(later, 4), 72, 50, seed=3, good=-world.GOOD))
    world.send(redis_client, world.simulate(world.day(later, 1), 24, 50, seed=4))

    second = run_learning(later)

    assert second is not None and second.status == ModelStatus.CANDIDATE
    ev = second.metrics["evaluation"]
    assert ev["live"]["version"] == first.pk
    assert ev["model"]["log_loss"] > ev["live"]["log_loss"]
    assert second.metrics["verdict"]["promote"] is False
    assert f"does not beat live #{first.pk}" in second.metrics["verdict"]["why"]
    assert list(ModelVersion.objects.live()) == [first]


def _evaluation(mine: float, constant: float, smoothed: float, live: float | None) -> dict:
    ev: dict[str, Any] = {
        "model": {"log_loss": mine},
        "constant": {"log_loss": constant},
        "smoothed": {"log_loss": smoothed},
    }
    if live is not None:
        ev["live"] = {"version": 3, "log_loss": live}
    return ev


def test_the_promotion_rule(settings: Any) -> None:
    settings.LEARNING_PROMOTE_MIN_GAIN = 0.01
    assert promotion_verdict(_evaluation(0.20, 0.30, 0.25, None))[0] is True
    assert promotion_verdict(_evaluation(0.26, 0.30, 0.25, None)) == (
        False, "log-loss 0.26 does not beat the smoothed baseline's 0.25",
    )  # fmt: skip
    assert promotion_verdict(_evaluation(0.20, 0.30, 0.25, 0.21))[0] is True
    # Better than live, but by less than the 1 % the setting asks for.
    assert promotion_verdict(_evaluation(0.2095, 0.30, 0.25, 0.21))[0] is False
    assert promotion_verdict(_evaluation(0.22, 0.30, 0.25, 0.21))[0] is False


@pytest.mark.django_db
def test_too_little_telemetry_trains_nothing(redis_client: Redis, small_windows: None) -> None:
    world.send(redis_client, world.simulate(world.day(NOW, 4), 96, 2, seed=5))
    assert run_learning(NOW) is None
    assert not ModelVersion.objects.exists()
