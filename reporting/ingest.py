"""Rolling the raw event stream up into hourly rows, exactly once (`reporting.stream`: read
through the `rollup` consumer group, written in one transaction with the watermark, then
acknowledged)."""

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django_redis import get_redis_connection
from redis import Redis

from reporting.backlog import Backlog, measure_backlog
from reporting.billing import refuse_billed_again
from reporting.breakdowns import (
    aggregate_creatives,
    aggregate_request_keys,
    write_creatives,
    write_request_keys,
)
from reporting.demand import (
    aggregate_demand,
    aggregate_latency,
    campaign_currencies,
    write_demand,
    write_latency,
)
from reporting.ivt.rollup import split_invalid, write_ivt
from reporting.ivt.unbill import write_invalidations
from reporting.measurement.failures import aggregate_errors, write_errors
from reporting.measurement.geo import aggregate_geo, write_geo
from reporting.measurement.upsert import add_rows
from reporting.models import (
    ConsentHourly,
    DeliveryDiagnosticHourly,
    HourlyRollup,
    HourlyTestTraffic,
    StreamWatermark,
)
from reporting.stream import (
    OWNER,
    Entry,
    Reader,
    consume,
    hour_of,
    lock_order,
    partition_suffix,
    partitions,
    stream_id,
)
from serving.keys import RedisKeys

log = logging.getLogger(__name__)

GROUP = "rollup"
CONSUMER = "rollup-1"
NANOS = Decimal(1_000_000_000)


@dataclass
class IngestResult:
    read: int = 0
    counted: int = 0
    skipped: int = 0
    rows: int = 0
    refused: int = 0  # impressions and clicks of decisions billed before


@dataclass
class _Totals:
    campaign_id: int = 0
    advertiser_id: int = 0
    requests: int = 0
    impressions: int = 0
    clicks: int = 0
    errors: int = 0
    spend_nanos: int = 0  # sum of CPM micros over impressions = spend in billionths


# Event kinds that add to the delivery rollup (losses, bids and player events do not).
DELIVERY_KINDS = frozenset({"req", "imp", "clk", "err"})


ConsentKey = tuple[datetime, str, str, bool]


_hour = hour_of


VALID_SIGNALS = ("tcf=valid", "gpp=valid")


def consent_key(hour: datetime, ledger: str) -> ConsentKey:
    """(hour, outcome, reason, valid signal) of a ledger like `gdpr=1 tcf=valid → contextual`."""
    seen, _, decided = ledger.rpartition("→")
    outcome, _, reason = decided.strip().partition(":")
    tokens = seen.split()
    valid = any(t in VALID_SIGNALS or (t.startswith("usp=") and t != "usp=invalid") for t in tokens)
    return hour, outcome, reason, valid


def _aggregate_consent(entries: list[Entry]) -> dict[ConsentKey, int]:
    # Per hour and ledger first: a batch holds thousands of requests and a few ledgers.
    ledgers: dict[tuple[datetime, str], int] = defaultdict(int)
    for _, events in entries:
        for e in events:
            if e.cs:
                ledgers[(_hour(e.ts), e.cs)] += 1
    counts: dict[ConsentKey, int] = defaultdict(int)
    for (hour, ledger), n in ledgers.items():
        counts[consent_key(hour, ledger)] += n
    return counts


def _write_consent(counts: dict[ConsentKey, int]) -> None:
    add_rows(
        ConsentHourly, ("hour", "outcome", "reason", "valid_signal"), (), ("requests",),
        [(*key, n) for key, n in lock_order(counts)],
    )  # fmt: skip


def _aggregate(entries: list[Entry]) -> dict[tuple[datetime, int, int], _Totals]:
    totals: dict[tuple[datetime, int, int], _Totals] = defaultdict(_Totals)
    for _, events in entries:
        for e in events:
            if e.t not in DELIVERY_KINDS:
                continue
            hour = _hour(e.ts)
            row = totals[(hour, e.pl, e.li)]
            row.campaign_id, row.advertiser_id = e.cp, e.adv
            if e.t == "req":
                row.requests += 1
            elif e.t == "imp":
                row.impressions += 1
                row.spend_nanos += e.cpm
            elif e.t == "clk":
                row.clicks += 1
                row.spend_nanos += e.cpm  # a CPC click's price; 0 for CPM line items
            elif e.t == "err":
                row.errors += 1
    return totals


DiagnosticKey = tuple[datetime, int, str]


def _aggregate_diagnostics(entries: list[Entry]) -> dict[DiagnosticKey, tuple[int, int, int]]:
    """(hour, line item, reason) → (campaign, advertiser, count) of serving's loss events."""
    counts: dict[DiagnosticKey, tuple[int, int, int]] = {}
    for _, events in entries:
        for e in events:
            if e.t == "loss" and e.li:
                key = (_hour(e.ts), e.li, e.r[:40])
                _, _, n = counts.get(key, (0, 0, 0))
                counts[key] = (e.cp, e.adv, n + 1)
    return counts


def _write_diagnostics(counts: dict[DiagnosticKey, tuple[int, int, int]]) -> None:
    add_rows(
        DeliveryDiagnosticHourly, ("hour", "line_item_id", "reason"), OWNER, ("count",),
        [(*key, *counts) for key, counts in lock_order(counts)],
    )  # fmt: skip


def _live_and_test(
    entries: list[Entry],
) -> tuple[list[Entry], dict[tuple[datetime, int], list[int]]]:
    """The entries without their test events (OpenRTB test = 1, never billed), and the test
    events' (requests, impressions, clicks) per (hour, placement)."""
    live: list[Entry] = []
    test: dict[tuple[datetime, int], list[int]] = defaultdict(lambda: [0, 0, 0])
    for eid, events in entries:
        if not any(e.tt for e in events):
            live.append((eid, events))
            continue
        live.append((eid, [e for e in events if not e.tt]))
        for e in events:
            if e.tt and e.t in ("req", "imp", "clk"):
                test[(_hour(e.ts), e.pl)][("req", "imp", "clk").index(e.t)] += 1
    return live, test


def _write_test(counts: dict[tuple[datetime, int], list[int]]) -> None:
    add_rows(
        HourlyTestTraffic, ("hour", "placement_id"), (), ("requests", "impressions", "clicks"),
        [(*key, *counts) for key, counts in lock_order(counts)],
    )  # fmt: skip


def _write(totals: dict[tuple[datetime, int, int], _Totals]) -> None:
    add_rows(
        HourlyRollup, ("hour", "placement_id", "line_item_id"), OWNER,
        ("requests", "impressions", "clicks", "errors", "spend"),
        [
            (*key, t.campaign_id, t.advertiser_id, t.requests, t.impressions, t.clicks,
             t.errors, Decimal(t.spend_nanos) / NANOS)
            for key, t in lock_order(totals)
        ],
    )  # fmt: skip


def ingest_events(
    batch_size: int | None = None, max_batches: int = 20, partition: int | None = None
) -> IngestResult:
    """Roll up what the stream holds now (bounded per call, per partition): every partition,
    or only `partition`; safe to run concurrently (each partition has its own lease)."""
    client: Redis = get_redis_connection("default")
    keys = RedisKeys(settings.REDIS_KEY_PREFIX)
    result = IngestResult()
    # First, before the database is needed: a stalled ingestion still reports its backlog.
    streams = partitions(client, keys)
    check_backlog(client, keys, streams)
    if partition is not None:
        streams = streams[partition : partition + 1]
    for stream in streams:
        _ingest_partition(client, keys, stream, batch_size, max_batches, result)
    if result.read:
        log.info("ingested %s", result)
    return result


def _ingest_partition(
    client: Redis,
    keys: RedisKeys,
    stream: str,
    batch_size: int | None,
    max_batches: int,
    result: IngestResult,
) -> None:
    reader = Reader(
        client, stream, GROUP, CONSUMER, watermark=stream,
        lease_name=keys.ingest_lock + partition_suffix(stream, keys),
        lease_seconds=settings.INGEST_LOCK_SECONDS,
    )  # fmt: skip

    def roll_up(fresh: list[Entry]) -> None:
        # Test traffic is counted apart and kept out of everything billed.
        live, test = _live_and_test(fresh)
        # Invalid traffic is counted apart and kept out of everything billed.
        live, invalid = split_invalid(live)
        # Impressions and clicks billed before (a replay Redis no longer knew of) go; the
        # entries stay, for the watermark. (Its rows are this partition's decisions only.)
        live, refused = refuse_billed_again(live)
        flat = [e for _, evs in live for e in evs]
        currencies = campaign_currencies(flat)
        totals = _aggregate(live)
        # Everything summed first, then written in one burst: the rows other partitions
        # share stay locked (until the commit) for the statements' time only, not while
        # Python sums, so partitions rolled up at once overlap all but their writes.
        sums: list[tuple[Callable[[Any], None], Any]] = [
            (_write_test, test),
            (write_ivt, invalid),
            (_write, totals),
            (_write_consent, _aggregate_consent(fresh)),
            (_write_diagnostics, _aggregate_diagnostics(live)),
            (write_creatives, aggregate_creatives(flat)),
            (write_errors, aggregate_errors(flat)),
            (write_request_keys, aggregate_request_keys(flat)),
            (write_demand, aggregate_demand(flat, currencies)),
            (write_geo, aggregate_geo(flat, currencies)),
            (write_latency, aggregate_latency(flat)),
        ]
        for write, rows in sums:
            write(rows)
        # Billed impressions serving judged invalid later (pixel stuffing), after the rows
        # this batch may have added them to.
        write_invalidations(flat)
        result.rows += len(totals)
        result.refused += refused

    done = consume(reader, roll_up, batch_size or settings.INGEST_BATCH_SIZE, max_batches)
    result.read += done.read
    result.counted += done.fresh
    result.skipped += done.skipped
    if done.acquired and not done.lost:
        _trim(client, stream)


def check_backlog(
    client: Redis, keys: RedisKeys, streams: tuple[str, ...] | None = None
) -> Backlog:
    """Measure the event stream, all its partitions, against STREAM_BACKLOG_LIMIT (gauge, log
    per crossing)."""
    return measure_backlog(
        client, streams or partitions(client, keys), GROUP, keys.stream_backlog,
        settings.STREAM_BACKLOG_LIMIT,
    )  # fmt: skip


def _trim(client: Redis, stream: str) -> None:
    """Drop raw events past their retention, but never ones not yet rolled up."""
    mark = StreamWatermark.objects.filter(stream=stream).values_list("last_id", flat=True).first()
    if not mark:
        return
    cutoff_ms = (
        int(datetime.now(UTC).timestamp() * 1000) - settings.RAW_EVENT_RETENTION_SECONDS * 1000
    )
    last_ms, last_seq = stream_id(mark)
    # XTRIM MINID keeps ids >= MINID: one past the watermark drops the watermark entry too.
    min_id = min((last_ms, last_seq + 1), (cutoff_ms, 0))
    # Nor ones the telemetry files do not hold yet (reporting/telemetry, once it has started).
    # Nor ones the conversions' attribution has not read yet (reporting/conversions).
    from reporting.conversions.attribution import floor as attributed
    from reporting.telemetry.writer import floor

    for written in (floor(stream), attributed(stream)):
        if written:
            written_ms, written_seq = stream_id(written)
            min_id = min(min_id, (written_ms, written_seq + 1))
    # Exact, not "~": retention is a promise about personal data, not a memory hint.
    client.xtrim(stream, minid=f"{min_id[0]}-{min_id[1]}", approximate=False)
