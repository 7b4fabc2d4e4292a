"""Writing the raw event stream as Parquet, exactly once per event.

The writer reads the stream through its own consumer group (`telemetry`, apart from the
rollups' `rollup`) and keeps its own watermark (a `StreamWatermark` row named
`<stream>|telemetry`). A batch's rows are written to one file per dataset and hour, named by
the first stream id in it, and only then is the watermark committed; the entries are
acknowledged after that. A crash before the commit reads the same entries again from the
same first id, so the files are written again under the same names (replaced, not added to);
a crash after it skips them by the watermark. Raw events are trimmed only behind this
watermark too, once it exists (`floor`).
"""

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec
import pyarrow as pa
from django.conf import settings
from django_redis import get_redis_connection
from redis import Redis

from reporting.models import StreamWatermark
from reporting.stream import Entry, Reader, consume, partition_suffix, partitions, stream_id
from reporting.telemetry.files import partition, write_table
from reporting.telemetry.schema import DECISIONS, OUTCOME_KINDS, OUTCOMES, SCHEMA_VERSION
from serving.keys import RedisKeys

log = logging.getLogger(__name__)

GROUP = "telemetry"
CONSUMER = "telemetry-1"


@dataclass
class WriteResult:
    read: int = 0
    written: int = 0  # entries written now
    skipped: int = 0  # entries at or below the watermark (written before)
    decisions: int = 0
    outcomes: int = 0
    files: int = 0


def watermark_name(stream: str) -> str:
    return f"{stream}|{GROUP}"


def floor(stream: str) -> str | None:
    """The last entry written to the files, when telemetry is on and has started; raw events
    after it must not be trimmed."""
    if not settings.TELEMETRY_ENABLED:
        return None
    mark: str | None = (
        StreamWatermark.objects.filter(stream=watermark_name(stream))
        .values_list("last_id", flat=True)
        .first()
    )
    return mark


def consent_outcome(ledger: str) -> str:
    """`personalised` of `gdpr=1 tcf=valid p34=yes → personalised`; the reason dropped."""
    return ledger.rpartition("→")[2].strip().partition(":")[0]


def _ms(ts: int) -> datetime:
    return datetime.fromtimestamp(ts / 1000, UTC)


def rows(entries: list[Entry]) -> dict[tuple[str, str, int], list[dict[str, Any]]]:
    """The entries' rows per (dataset, date, hour)."""
    out: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
    for eid, events in entries:
        if not events:
            continue
        # The first event of an ad request carries its consent, truncated IP and pseudonym.
        head = events[0]
        outcome = consent_outcome(head.cs) if head.cs else ""
        personal = outcome == "personalised"
        for e in events:
            when = _ms(e.ts)
            date, hour = when.strftime("%Y-%m-%d"), when.hour
            if e.t == "req":
                out[("decisions", date, hour)].append(
                    {
                        "schema_version": SCHEMA_VERSION,
                        "stream_id": eid,
                        "decision_id": e.d,
                        "ts": when,
                        "placement_id": e.pl,
                        "line_item_id": e.li,
                        "campaign_id": e.cp,
                        "advertiser_id": e.adv,
                        "creative_id": e.cr,
                        "buyer_id": e.b,
                        "filled": bool(e.li or e.b),
                        "consent": head.cs,
                        "consent_outcome": outcome,
                        "pseudonymous_id": (head.u or None) if personal else None,
                        "ip_truncated": (head.ip or None) if personal else None,
                        "test": bool(e.tt),
                        "invalid_reason": None,
                        **_features(e.x, personal),
                    }
                )
            elif e.t in OUTCOME_KINDS:
                out[("outcomes", date, hour)].append(
                    {
                        "schema_version": SCHEMA_VERSION,
                        "stream_id": eid,
                        "decision_id": e.d,
                        "ts": when,
                        "kind": e.t,
                        "placement_id": e.pl,
                        "line_item_id": e.li,
                        "campaign_id": e.cp,
                        "advertiser_id": e.adv,
                        "creative_id": e.cr,
                        "buyer_id": e.b,
                        "price_micros": e.cpm,
                        "error_code": (e.r or None) if e.t == "err" else None,
                        "event_name": (e.r or None) if e.t == "evt" else None,
                        "test": bool(e.tt),
                        "invalid_reason": None,
                    }
                )
    return out


FEATURES = (
    "door", "format", "size", "country", "region", "device_type", "os", "channel",
    "content_categories", "keyword_hashes", "propensity", "clearing_price_micros",
    "hour_of_week",
)  # fmt: skip
CANDIDATE_FIELDS = (
    "line_item_id", "creative_id", "tier", "bid_micros", "score_micros", "predicted_ctr",
)  # fmt: skip
NO_FEATURES: dict[str, Any] = dict.fromkeys((*FEATURES, "candidates"))


# Prices come as JSON numbers: read back as Decimals, exactly.
_decode_features = msgspec.json.Decoder(float_hook=Decimal).decode
MICROS = Decimal(1_000_000)


def _micros(value: Any) -> int:
    return int(Decimal(value) * MICROS)


def _features(x: str, personal: bool) -> dict[str, Any]:
    """A "req" event's `x` (`serving.telemetry.slot_features`) as columns."""
    if not x:
        return NO_FEATURES
    try:
        values = _decode_features(x)
        out = dict(zip(FEATURES, values[: len(FEATURES)], strict=True))
        out["clearing_price_micros"] = _micros(out["clearing_price_micros"])
        out["propensity"] = float(out["propensity"])
        out["device_type"] = int(out["device_type"])
        out["hour_of_week"] = int(out["hour_of_week"])
        for key in ("door", "format", "size", "country", "region", "os", "channel"):
            out[key] = str(out[key])
        out["content_categories"] = [str(c) for c in out["content_categories"]]
        out["keyword_hashes"] = [int(k) for k in out["keyword_hashes"]]
        out["candidates"] = [
            dict(
                zip(
                    CANDIDATE_FIELDS,
                    (*c[:3], _micros(c[3]), _micros(c[4]), float(c[5])),
                    strict=True,
                )
            )
            for c in values[-1]
        ]
    except (msgspec.DecodeError, ValueError, TypeError, ArithmeticError):
        log.error("telemetry: malformed slot features %r", x[:200])
        return NO_FEATURES
    for key in ("door", "format", "size", "country", "os", "channel"):
        out[key] = out[key] or None
    out["device_type"] = out["device_type"] or None
    if not personal:
        out["region"] = None  # a location finer than the country: only where personalised
    out["region"] = out["region"] or None
    return out


def _write_files(grouped: dict[tuple[str, str, int], list[dict[str, Any]]]) -> int:
    schemas = {"decisions": DECISIONS, "outcomes": OUTCOMES}
    for (dataset, date, hour), batch in grouped.items():
        first = min((r["stream_id"] for r in batch), key=stream_id)
        name = f"{partition(dataset, date, hour)}/part-{first}.parquet"
        write_table(name, pa.Table.from_pylist(batch, schema=schemas[dataset]))
    return len(grouped)


def write_telemetry(batch_size: int | None = None, max_batches: int = 20) -> WriteResult:
    """Write what the stream holds now to the telemetry files (bounded per call)."""
    result = WriteResult()
    if not settings.TELEMETRY_ENABLED:
        return result
    client: Redis = get_redis_connection("default")
    keys = RedisKeys(settings.REDIS_KEY_PREFIX)

    def write(fresh: list[Entry]) -> None:
        grouped = rows(fresh)
        result.files += _write_files(grouped)
        for (dataset, _, _), batch in grouped.items():
            if dataset == "decisions":
                result.decisions += len(batch)
            else:
                result.outcomes += len(batch)

    for stream in partitions(client, keys):
        reader = Reader(
            client, stream, GROUP, CONSUMER, watermark=watermark_name(stream),
            lease_name=f"{keys.ingest_lock}{partition_suffix(stream, keys)}:{GROUP}",
            lease_seconds=settings.INGEST_LOCK_SECONDS,
        )  # fmt: skip
        done = consume(reader, write, batch_size or settings.TELEMETRY_BATCH_SIZE, max_batches)
        result.read += done.read
        result.written += done.fresh
        result.skipped += done.skipped
    if result.read:
        log.info("telemetry written %s", result)
    return result
