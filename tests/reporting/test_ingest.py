"""Rolling up the event stream: exact counts, acknowledged after commit, never twice."""

import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.db.models import Sum
from redis import Redis

from reporting import ingest
from reporting.ingest import GROUP, ingest_events
from reporting.models import ConsentHourly, HourlyRollup, StreamWatermark
from reporting.queries import consent_coverage
from serving.events import Event, encode_events
from serving.keys import RedisKeys

pytestmark = pytest.mark.django_db

HOUR_MS = 1_800_000_000_000 - (1_800_000_000_000 % 3_600_000)


def add(
    client: Redis, kind: str, li: int = 5, cpm: int = 0, ts: int = HOUR_MS + 1000, d: str = ""
) -> None:
    # Each event its own decision unless the test says otherwise (billing refuses repeats).
    d = d or uuid.uuid4().hex
    event = Event(t=kind, ts=ts, pl=2, li=li, cp=3, adv=1, cr=9, cpm=cpm, d=d)
    client.xadd(RedisKeys(settings.REDIS_KEY_PREFIX).events, {"v": encode_events([event])})


def test_events_roll_up_per_hour_placement_and_line_item(redis_client: Redis) -> None:
    for _ in range(3):
        add(redis_client, "req")
    add(redis_client, "req", li=0)  # unfilled
    add(redis_client, "imp", cpm=2_500_000)
    add(redis_client, "imp", cpm=1_250_000)
    add(redis_client, "clk")
    add(redis_client, "imp", cpm=1_000_000, ts=HOUR_MS + 3_600_000)  # next hour

    result = ingest_events()

    assert (result.read, result.counted, result.skipped) == (8, 8, 0)
    rows = {
        (r.hour.timestamp(), r.line_item_id): (r.requests, r.impressions, r.clicks, r.spend)
        for r in HourlyRollup.objects.all()
    }
    first, second = HOUR_MS / 1000, HOUR_MS / 1000 + 3600
    assert rows == {
        (first, 5): (3, 2, 1, Decimal("0.003750000")),
        (first, 0): (1, 0, 0, Decimal("0")),
        (second, 5): (0, 1, 0, Decimal("0.001000000")),
    }


def test_a_second_run_adds_only_new_events(redis_client: Redis) -> None:
    add(redis_client, "imp", cpm=1_000_000)
    ingest_events()
    add(redis_client, "imp", cpm=1_000_000)

    assert ingest_events().counted == 1
    assert ingest_events().counted == 0
    assert HourlyRollup.objects.get().impressions == 2


def test_events_committed_but_not_acknowledged_are_not_counted_twice(
    redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    add(redis_client, "imp", cpm=1_000_000)
    add(redis_client, "clk")
    # The worker dies after the database commit, before XACK.
    monkeypatch.setattr(Redis, "xack", lambda *a, **k: (_ for _ in ()).throw(ConnectionError()))
    with pytest.raises(ConnectionError):
        ingest_events()
    monkeypatch.undo()
    stream = RedisKeys(settings.REDIS_KEY_PREFIX).events
    assert redis_client.xpending(stream, GROUP)["pending"] == 2

    result = ingest_events()

    assert (result.read, result.counted, result.skipped) == (2, 0, 2)
    assert redis_client.xpending(stream, GROUP)["pending"] == 0
    row = HourlyRollup.objects.get()
    assert (row.impressions, row.clicks) == (1, 1)


def test_events_read_but_not_committed_are_counted_on_the_next_run(
    redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    add(redis_client, "imp", cpm=1_000_000)

    def crash(totals: object) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr(ingest, "_write", crash)
    with pytest.raises(RuntimeError):
        ingest_events()
    monkeypatch.undo()
    assert HourlyRollup.objects.count() == 0
    assert StreamWatermark.objects.filter(last_id__gt="0-0").count() == 0

    assert ingest_events().counted == 1
    assert HourlyRollup.objects.get().impressions == 1


def test_raw_events_are_trimmed_after_retention_but_never_before_rollup(
    redis_client: Redis, settings: Any
) -> None:
    stream = RedisKeys(settings.REDIS_KEY_PREFIX).events
    add(redis_client, "imp", cpm=1, ts=int(time.time() * 1000))
    ingest_events()
    assert redis_client.xlen(stream) == 1  # within retention

    settings.RAW_EVENT_RETENTION_SECONDS = -3600  # everything is past retention now
    add(redis_client, "imp", cpm=1)
    add(redis_client, "imp", cpm=1)
    ingest_events(batch_size=1, max_batches=1)  # rolls up one of the two
    assert redis_client.xlen(stream) == 1  # the one not rolled up stays

    ingest_events()
    assert redis_client.xlen(stream) == 0
    assert HourlyRollup.objects.aggregate(n=Sum("impressions"))["n"] == 3


def test_consent_ledgers_roll_up_into_coverage(redis_client: Redis) -> None:
    stream = RedisKeys(settings.REDIS_KEY_PREFIX).events
    ledgers = [
        "gdpr=1 tcf=valid p2=yes p34=yes → personalised",
        "gdpr=1 tcf=valid p2=yes p34=no → contextual:contextual_only",
        "gdpr=1 tcf=missing → blocked:gdpr_no_consent",
        "usp=1YYN restricted=us_privacy_opt_out → contextual:us_privacy_opt_out",
        "→ personalised",
    ]
    for ledger in ledgers:
        events = [
            Event(t="req", ts=HOUR_MS + 5, pl=1, cs=ledger),
            Event(t="req", ts=HOUR_MS + 5, pl=1),
        ]
        redis_client.xadd(stream, {"v": encode_events(events)})

    ingest_events()
    coverage = consent_coverage(datetime.fromtimestamp(HOUR_MS / 1000, UTC))

    assert ConsentHourly.objects.aggregate(n=Sum("requests"))["n"] == 5  # per request, not slot
    assert coverage["requests"] == 5
    assert coverage["valid_signal"] == 60.0  # two valid TC strings and one US Privacy string
    assert coverage["personalised"] == 40.0
    assert {(r["outcome"], r["reason"], r["requests"]) for r in coverage["by_reason"]} == {
        ("contextual", "contextual_only", 1),
        ("blocked", "gdpr_no_consent", 1),
        ("contextual", "us_privacy_opt_out", 1),
    }


def test_losses_become_delivery_diagnostics_and_errors_count_per_line_item(
    redis_client: Redis, admin_client: Any
) -> None:
    from reporting.models import DeliveryDiagnosticHourly
    from reporting.queries import delivery_diagnostics

    stream = RedisKeys(settings.REDIS_KEY_PREFIX).events
    losses = [
        Event(t="loss", ts=HOUR_MS + 5, pl=2, li=7, cp=3, adv=1, d="r", r="frequency_cap"),
        Event(t="loss", ts=HOUR_MS + 6, pl=2, li=7, cp=3, adv=1, d="r", r="frequency_cap"),
        Event(t="loss", ts=HOUR_MS + 7, pl=2, li=7, cp=3, adv=1, d="r", r="outbid"),
    ]
    redis_client.xadd(stream, {"v": encode_events(losses)})
    add(redis_client, "imp", cpm=1_000_000)
    add(redis_client, "err")

    ingest_events()

    rows = {(r.line_item_id, r.reason): r.count for r in DeliveryDiagnosticHourly.objects.all()}
    assert rows == {(7, "frequency_cap"): 2, (7, "outbid"): 1}
    # Losses add no delivery rows; the creative error counts on its line item's row.
    assert list(HourlyRollup.objects.values_list("line_item_id", "impressions", "errors")) == [
        (5, 1, 1)
    ]
    [report] = delivery_diagnostics(DeliveryDiagnosticHourly.objects.all())
    assert [(r["reason"], r["count"]) for r in report["reasons"]] == [
        ("frequency_cap", 2),
        ("outbid", 1),
    ]
    assert report["reasons"][0]["label"] == "Frequency cap reached"

    api = admin_client.get("/api/v1/reports/diagnostics/?line_item=7")
    assert api.status_code == 200
    assert {r["reason"] for r in api.json()["results"]} == {"frequency_cap", "outbid"}
    assert admin_client.get("/api/v1/reports/diagnostics/?line_item=x").status_code == 400
