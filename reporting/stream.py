"""Consuming the raw event stream exactly once, for every reader of it (the rollups, the
telemetry files, ...).

Each reader has its own consumer group, lease and watermark (a `StreamWatermark` row).
Entries are read through the group (our own pending entries first: a previous run that died
before acknowledging them), handed to the reader inside one database transaction together
with the watermark, and acknowledged only after that commit. A crash before the commit leaves
them pending and they are read again; a crash after it leaves them pending too, but the
watermark makes their second reading a no-op.
"""

import contextlib
import functools
import gc
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import msgspec
from django.conf import settings
from django.db import transaction
from redis import Redis
from redis.exceptions import ResponseError

from reporting.lease import Lease, LeaseLost
from reporting.models import StreamWatermark
from serving.events import KNOWN_PARTITIONS, Event, decode_events
from serving.keys import RedisKeys

log = logging.getLogger(__name__)

Entry = tuple[str, list[Event]]


def stream_id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def decode(eid: bytes, fields: dict[bytes, bytes]) -> list[Event]:
    # A pending entry trimmed away comes back with no fields; a malformed one is logged and
    # skipped rather than blocking every entry behind it.
    if not fields:
        return []
    try:
        return decode_events(fields[b"v"])
    except (KeyError, msgspec.DecodeError):
        log.error("skipping malformed event entry %s: %r", eid, fields)
        return []


def partitions(client: Redis, keys: RedisKeys) -> tuple[str, ...]:
    """Every partition of the event stream that may hold entries: as many as configured
    (EVENT_STREAM_PARTITIONS), or as were ever configured if that was more, so that lowering
    the setting leaves no partition unread."""
    known: Any = client.eval(KNOWN_PARTITIONS.body, 1, keys.event_partitions,
                             settings.EVENT_STREAM_PARTITIONS)  # fmt: skip
    return keys.event_streams(int(known))


def partition_suffix(stream: str, keys: RedisKeys) -> str:
    """ "" for the first partition (names as with one partition), ":{n}" for the others: what
    a reader appends to its lease's name."""
    return stream.removeprefix(keys.events)


def lock_order[K, V](rows: dict[K, V]) -> list[tuple[K, V]]:
    """A batch's rollup rows in one order for every writer: partitions rolled up at once lock
    the rows they share in the same order, so one waits for the other instead of both
    deadlocking."""
    # The keys' own order (tuples of one shape: hours, ids, codes); repr only should a
    # writer's keys not compare.
    try:
        return sorted(rows.items(), key=itemgetter(0))
    except TypeError:
        return sorted(rows.items(), key=lambda kv: repr(kv[0]))


# The rollup columns set when a row is made and never added to (`measurement.upsert`).
OWNER = ("campaign_id", "advertiser_id")


@functools.lru_cache(maxsize=4096)
def _hour_starting(hours: int) -> datetime:
    return datetime.fromtimestamp(hours * 3600, UTC)


def hour_of(ts_ms: int) -> datetime:
    """The UTC hour an event's millisecond timestamp falls in (one datetime per hour, cached:
    every rollup asks it of every event)."""
    return _hour_starting(ts_ms // 3_600_000)


@dataclass(frozen=True, slots=True)
class Reader:
    """One consumer group's view of a stream, and where its watermark is kept."""

    client: Redis
    stream: str
    group: str
    consumer: str
    watermark: str  # the StreamWatermark row's name
    lease_name: str
    lease_seconds: float

    def ensure_group(self) -> None:
        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read(self, count: int) -> list[Entry]:
        for start in ("0", ">"):
            reply: Any = self.client.xreadgroup(
                self.group, self.consumer, {self.stream: start}, count=count
            )
            entries = [
                (eid.decode(), decode(eid, fields))
                for _, batch in reply or []
                for eid, fields in batch
            ]
            if entries:
                return entries
        return []


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a batch is read and rolled up: a batch makes some
    hundred thousand short-lived objects (freed by reference counting, none in cycles), whose
    allocations set off full collections over the whole Django process: 15-25 % of a batch's
    time (bench/profile_ingest.py)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass
class Consumed:
    acquired: bool = False  # False: another worker holds the lease
    lost: bool = False  # the lease expired mid-run; the next run carries on
    read: int = 0
    fresh: int = 0
    skipped: int = 0  # entries at or below the watermark (handled before)


def consume(
    reader: Reader,
    handle: Callable[[list[Entry]], None],
    batch_size: int,
    max_batches: int,
) -> Consumed:
    """Hand what the stream holds now, at most `max_batches` batches, to `handle`: called in
    the transaction that advances the watermark, with the entries past it."""
    done = Consumed()
    lease = Lease(reader.client, reader.lease_name, reader.lease_seconds)
    if not lease.acquire():
        return done
    done.acquired = True
    try:
        reader.ensure_group()
        for _ in range(max_batches):
            lease.check()
            with gc_paused():
                entries = reader.read(batch_size)
                if not entries:
                    break
                done.read += len(entries)
                with transaction.atomic():
                    mark, _ = StreamWatermark.objects.select_for_update().get_or_create(
                        stream=reader.watermark
                    )
                    below = stream_id(mark.last_id)
                    ids = [stream_id(eid) for eid, _ in entries]
                    fresh = [e for e, at in zip(entries, ids, strict=True) if at > below]
                    if fresh:
                        handle(fresh)
                        ms, seq = max(at for at in ids if at > below)
                        mark.last_id = f"{ms}-{seq}"
                        mark.save(update_fields=["last_id", "updated_at"])
                    # Last word before the commit: a holder that lost its lease (stalled past
                    # it; another worker may be on these entries) rolls back instead.
                    lease.check()
            done.fresh += len(fresh)
            done.skipped += len(entries) - len(fresh)
            reader.client.xack(reader.stream, reader.group, *[e[0] for e in entries])
    except LeaseLost:
        done.lost = True
        log.warning("%s stopped: its lease expired; the next run carries on", reader.group)
    finally:
        lease.release()
    return done
