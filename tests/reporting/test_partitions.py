"""A partitioned event stream (EVENT_STREAM_PARTITIONS): serving spreads requests over the
partitions by decision id, each partition is rolled up by its own lease and watermark, and the
rollups come out as with one partition."""

import threading
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.db.models import Sum
from redis import Redis

from reporting import ingest
from reporting.ingest import check_backlog, ingest_events
from reporting.models import HourlyRollup, StreamWatermark
from reporting.stream import partitions
from serving.events import Event, EventSink, encode_events
from serving.ids import new_decision_id
from serving.keys import RedisKeys

pytestmark = pytest.mark.django_db

HOUR_MS = 1_800_000_000_000 - (1_800_000_000_000 % 3_600_000)


@pytest.fixture
def four(settings: Any) -> RedisKeys:
    settings.EVENT_STREAM_PARTITIONS = 4
    return RedisKeys(settings.REDIS_KEY_PREFIX)


def _sink(keys: RedisKeys, n: int) -> EventSink:
    return EventSink("redis://unused", keys.events, keys.event_streams(n))


def add(client: Redis, keys: RedisKeys, kind: str, li: int = 5, cpm: int = 0) -> str:
    """One event of a fresh decision, in the partition serving would choose for it."""
    d = f"{new_decision_id()}-0"
    event = Event(t=kind, ts=HOUR_MS + 1000, pl=2, li=li, cp=3, adv=1, cr=9, cpm=cpm, d=d)
    stream = _sink(keys, 4).stream_for(d)
    client.xadd(stream, {"v": encode_events([event])})
    return stream


def test_decisions_spread_over_the_partitions_and_a_requests_slots_share_one() -> None:
    keys = RedisKeys("p:")
    sink = _sink(keys, 4)
    rids = [new_decision_id() for _ in range(4000)]
    counts: dict[str, int] = {}
    for rid in rids:
        stream = sink.stream_for(f"{rid}-0")
        assert sink.stream_for(f"{rid}-1") == sink.stream_for(rid) == stream
        counts[stream] = counts.get(stream, 0) + 1
    assert set(counts) == {"p:events", "p:events:1", "p:events:2", "p:events:3"}
    assert all(800 < n < 1200 for n in counts.values()), counts
    # One partition: everything in the stream as before, whatever the id.
    assert _sink(keys, 1).stream_for(rids[0]) == "p:events"


def test_every_partition_is_rolled_up_exactly_as_one_stream_would_be(
    redis_client: Redis, four: RedisKeys
) -> None:
    used = set()
    for _ in range(40):
        used.add(add(redis_client, four, "req"))
        used.add(add(redis_client, four, "imp", cpm=1_000_000))
    assert len(used) == 4

    result = ingest_events()

    assert (result.read, result.counted) == (80, 80)
    totals = HourlyRollup.objects.aggregate(r=Sum("requests"), i=Sum("impressions"), s=Sum("spend"))
    assert totals == {"r": 40, "i": 40, "s": Decimal("0.040000000")}
    marks = set(StreamWatermark.objects.values_list("stream", flat=True))
    assert marks == set(four.event_streams(4))
    assert ingest_events().counted == 0  # nothing twice


def test_a_partition_that_fails_is_rolled_up_on_the_next_run_and_the_others_are_kept(
    redis_client: Redis, four: RedisKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(40):
        add(redis_client, four, "imp", cpm=1_000_000)
    real = ingest._write
    calls = {"n": 0}

    def fail_the_third(totals: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("database went away")
        real(totals)

    monkeypatch.setattr(ingest, "_write", fail_the_third)
    with pytest.raises(RuntimeError):
        ingest_events()
    monkeypatch.undo()
    done = HourlyRollup.objects.aggregate(i=Sum("impressions"))["i"]
    assert 0 < done < 40

    ingest_events()

    assert HourlyRollup.objects.aggregate(i=Sum("impressions"))["i"] == 40


def test_one_partition_at_a_time_as_the_fanned_out_tasks_do(
    redis_client: Redis, four: RedisKeys
) -> None:
    streams = {add(redis_client, four, "imp", cpm=1_000_000) for _ in range(40)}
    assert len(streams) == 4
    counted = [ingest_events(partition=n).counted for n in range(4)]
    assert sum(counted) == 40 and all(counted)
    assert HourlyRollup.objects.get().impressions == 40


def test_lowering_the_setting_leaves_no_partition_unread(
    redis_client: Redis, four: RedisKeys, settings: Any
) -> None:
    streams = {add(redis_client, four, "imp", cpm=1_000_000) for _ in range(40)}
    assert four.event_stream(3) in streams
    partitions(redis_client, four)  # what serving's start (or any reader) records
    settings.EVENT_STREAM_PARTITIONS = 1

    assert partitions(redis_client, four) == four.event_streams(4)
    assert ingest_events().counted == 40


def test_the_backlog_counts_every_partition(redis_client: Redis, four: RedisKeys) -> None:
    for _ in range(20):
        add(redis_client, four, "req")
    backlog = check_backlog(redis_client, four)
    assert backlog.length == 20
    ingest_events()
    assert check_backlog(redis_client, four).unrolled in (0, None)


@pytest.mark.django_db(transaction=True)
def test_partitions_rolled_up_at_once_write_the_same_rows_exactly(
    redis_client: Redis, four: RedisKeys
) -> None:
    """Four consumers at once, each on its partition, all adding to the same rollup rows
    (same hour, placement and line items): no deadlock, no lost update."""
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers: Postgres (SQLite serialises them)")
    for _ in range(400):
        add(redis_client, four, "req", li=5)
        add(redis_client, four, "imp", li=6, cpm=1_000_000)
        add(redis_client, four, "imp", li=5, cpm=2_000_000)
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            ingest_events(batch_size=50, partition=n)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    rows = {
        r.line_item_id: (r.requests, r.impressions, r.spend) for r in HourlyRollup.objects.all()
    }
    assert rows == {
        5: (400, 400, Decimal("0.800000000")),
        6: (0, 400, Decimal("0.400000000")),
    }
