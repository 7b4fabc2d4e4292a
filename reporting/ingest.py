"""Rolling the raw event stream up into hourly rows, exactly once.

Entries are read through a consumer group, aggregated, written in one database transaction
together with the watermark, and acknowledged only after that commit. A crash before the
commit leaves them pending and they are read again; a crash after it leaves them pending too,
but the watermark makes their second reading a no-op.
"""

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django_redis import get_redis_connection
from redis import Redis
from redis.exceptions import ResponseError

from reporting.backlog import Backlog, measure_backlog
from reporting.billing import refuse_billed_again
from reporting.breakdowns import (
    aggregate_creatives,
    aggregate_request_keys,
    write_creatives,
    write_request_keys,
)
from reporting.demand import aggregate_demand, write_demand
from reporting.lease import Lease, LeaseLost
from reporting.models import (
    ConsentHourly,
    DeliveryDiagnosticHourly,
    HourlyRollup,
    HourlyTestTraffic,
    StreamWatermark,
)
from serving.events import Event, decode_events
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


def _stream_id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _ensure_group(client: Redis, stream: str) -> None:
    try:
        client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


Entry = tuple[str, list[Event]]


def _read(client: Redis, stream: str, count: int) -> list[Entry]:
    # Our own pending entries first (a previous run died before acknowledging), then new ones.
    for start in ("0", ">"):
        reply: Any = client.xreadgroup(GROUP, CONSUMER, {stream: start}, count=count)
        entries = []
        for _, batch in reply or []:
            for eid, fields in batch:
                events = _decode(eid, fields)
                entries.append((eid.decode(), events))
        if entries:
            return entries
    return []


def _decode(eid: bytes, fields: dict[bytes, bytes]) -> list[Event]:
    # A pending entry trimmed away comes back with no fields; a malformed one is logged and
    # skipped rather than blocking every entry behind it.
    if not fields:
        return []
    try:
        return decode_events(fields[b"v"])
    except (KeyError, msgspec.DecodeError):
        log.error("skipping malformed event entry %s: %r", eid, fields)
        return []


ConsentKey = tuple[datetime, str, str, bool]


def _hour(ts_ms: int) -> datetime:
    """The UTC hour an event's millisecond timestamp falls in."""
    return datetime.fromtimestamp(ts_ms // 3_600_000 * 3600, UTC)


VALID_SIGNALS = ("tcf=valid", "gpp=valid")


def consent_key(hour: datetime, ledger: str) -> ConsentKey:
    """(hour, outcome, reason, valid signal) of a ledger like `gdpr=1 tcf=valid → contextual`."""
    seen, _, decided = ledger.rpartition("→")
    outcome, _, reason = decided.strip().partition(":")
    tokens = seen.split()
    valid = any(t in VALID_SIGNALS or (t.startswith("usp=") and t != "usp=invalid") for t in tokens)
    return hour, outcome, reason, valid


def _aggregate_consent(entries: list[Entry]) -> dict[ConsentKey, int]:
    counts: dict[ConsentKey, int] = defaultdict(int)
    for _, events in entries:
        for e in events:
            if e.cs:
                counts[consent_key(_hour(e.ts), e.cs)] += 1
    return counts


def _write_consent(counts: dict[ConsentKey, int]) -> None:
    for (hour, outcome, reason, valid), n in counts.items():
        row, _ = ConsentHourly.objects.get_or_create(
            hour=hour, outcome=outcome, reason=reason, valid_signal=valid
        )
        ConsentHourly.objects.filter(pk=row.pk).update(requests=F("requests") + n)


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
    for (hour, line_item_id, reason), (campaign_id, advertiser_id, n) in counts.items():
        row, _ = DeliveryDiagnosticHourly.objects.get_or_create(
            hour=hour,
            line_item_id=line_item_id,
            reason=reason,
            defaults={"campaign_id": campaign_id, "advertiser_id": advertiser_id},
        )
        DeliveryDiagnosticHourly.objects.filter(pk=row.pk).update(count=F("count") + n)


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
    for (hour, placement_id), (requests, impressions, clicks) in counts.items():
        row, _ = HourlyTestTraffic.objects.get_or_create(hour=hour, placement_id=placement_id)
        HourlyTestTraffic.objects.filter(pk=row.pk).update(
            requests=F("requests") + requests,
            impressions=F("impressions") + impressions,
            clicks=F("clicks") + clicks,
        )


def _write(totals: dict[tuple[datetime, int, int], _Totals]) -> None:
    for (hour, placement_id, line_item_id), t in totals.items():
        row, _ = HourlyRollup.objects.get_or_create(
            hour=hour,
            placement_id=placement_id,
            line_item_id=line_item_id,
            defaults={"campaign_id": t.campaign_id, "advertiser_id": t.advertiser_id},
        )
        HourlyRollup.objects.filter(pk=row.pk).update(
            requests=F("requests") + t.requests,
            impressions=F("impressions") + t.impressions,
            clicks=F("clicks") + t.clicks,
            errors=F("errors") + t.errors,
            spend=F("spend") + Decimal(t.spend_nanos) / NANOS,
        )


def ingest_events(batch_size: int | None = None, max_batches: int = 20) -> IngestResult:
    """Roll up what the stream holds now (bounded per call); safe to run concurrently."""
    client: Redis = get_redis_connection("default")
    keys = RedisKeys(settings.REDIS_KEY_PREFIX)
    stream = keys.events
    batch_size = batch_size or settings.INGEST_BATCH_SIZE
    result = IngestResult()
    # First, before the database is needed: a stalled ingestion still reports its backlog.
    check_backlog(client, keys)
    lease = Lease(client, keys.ingest_lock, settings.INGEST_LOCK_SECONDS)
    if not lease.acquire():
        return result  # another worker is on it
    try:
        _ensure_group(client, stream)
        for _ in range(max_batches):
            lease.check()
            entries = _read(client, stream, batch_size)
            if not entries:
                break
            result.read += len(entries)
            with transaction.atomic():
                mark, _ = StreamWatermark.objects.select_for_update().get_or_create(stream=stream)
                floor = _stream_id(mark.last_id)
                fresh = [e for e in entries if _stream_id(e[0]) > floor]
                rows = refused = 0
                if fresh:
                    # Test traffic is counted apart and kept out of everything billed.
                    live, test = _live_and_test(fresh)
                    _write_test(test)
                    # Impressions and clicks billed before (a replay Redis no longer knew of)
                    # go; the entries stay, for the watermark.
                    live, refused = refuse_billed_again(live)
                    totals = _aggregate(live)
                    _write(totals)
                    _write_consent(_aggregate_consent(fresh))
                    _write_diagnostics(_aggregate_diagnostics(live))
                    flat = [e for _, evs in live for e in evs]
                    write_creatives(aggregate_creatives(flat))
                    write_request_keys(aggregate_request_keys(flat))
                    write_demand(aggregate_demand(flat))
                    rows = len(totals)
                    mark.last_id = max((e[0] for e in fresh), key=_stream_id)
                    mark.save(update_fields=["last_id", "updated_at"])
                # Last word before the commit: a holder that lost its lease (stalled past it;
                # another worker may be on these entries) rolls back instead of committing.
                lease.check()
            result.skipped += len(entries) - len(fresh)
            result.rows += rows
            result.counted += len(fresh)
            result.refused += refused
            client.xack(stream, GROUP, *[e[0] for e in entries])
        _trim(client, stream)
    except LeaseLost:
        log.warning("ingest stopped: its lease expired; the next run carries on")
    finally:
        lease.release()
    if result.read:
        log.info("ingested %s", result)
    return result


def check_backlog(client: Redis, keys: RedisKeys) -> Backlog:
    """Measure the event stream against STREAM_BACKLOG_LIMIT (gauge, log per crossing)."""
    return measure_backlog(
        client, keys.events, GROUP, keys.stream_backlog, settings.STREAM_BACKLOG_LIMIT
    )


def _trim(client: Redis, stream: str) -> None:
    """Drop raw events past their retention, but never ones not yet rolled up."""
    mark = StreamWatermark.objects.filter(stream=stream).values_list("last_id", flat=True).first()
    if not mark:
        return
    cutoff_ms = (
        int(datetime.now(UTC).timestamp() * 1000) - settings.RAW_EVENT_RETENTION_SECONDS * 1000
    )
    last_ms, last_seq = _stream_id(mark)
    # XTRIM MINID keeps ids >= MINID: one past the watermark drops the watermark entry too.
    min_id = min((last_ms, last_seq + 1), (cutoff_ms, 0))
    # Nor ones the telemetry files do not hold yet (reporting/telemetry, once it has started).
    from reporting.telemetry.writer import floor

    written = floor(stream)
    if written:
        written_ms, written_seq = _stream_id(written)
        min_id = min(min_id, (written_ms, written_seq + 1))
    # Exact, not "~": retention is a promise about personal data, not a memory hint.
    client.xtrim(stream, minid=f"{min_id[0]}-{min_id[1]}", approximate=False)
