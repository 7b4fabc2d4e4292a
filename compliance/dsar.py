"""Honouring a data-subject request: find, export or erase what is held for its pseudonyms.

The job asks each store in `STORES` in turn. A store `collect`s what it holds for the
pseudonyms (access) or `erase`s it (erasure); the Parquet telemetry files are one of them
(`reporting.telemetry.privacy.TelemetryFiles`). Every deletion in Redis and its count are one
atomic call, so a job that dies midway leaves exact counts behind and a re-run finishes the
work: running a request again, done or not, never erases anything twice or anything else (a
telemetry file is rewritten before its rows are counted: a crash between the two counts them
short, and the re-run finds nothing more to erase).

The raw event stream (`RedisKeys.events`) is read in chunks (XRANGE, `DSAR_SCAN_CHUNK`
entries); an entry's bytes are searched for the pseudonyms before anything is decoded, so a
million events cost seconds. Serving writes one entry per ad request holding that request's
events, and puts the pseudonym (and truncated IP) on its first event only: an entry with an
event carrying one of the subject's pseudonyms is the subject's, all its events without an id
included. (An event carrying another, non-empty id would be someone else's; serving writes
none, but the job would leave it out of an export and count it apart.)

Impressions and clicks are separate entries that carry the decision's pseudonym (from its
signed tracking token, for the invalid-traffic rules and refunds, `serving.ivt`) and the
truncated IP they came from: they are the subject's entries like the ad requests. Creative
errors carry only the decision id. They are not linked to the subject by it: request ids
may be chosen by the caller and are not unique, so linking by them could hand one person's
data to another.

The invalid-traffic counters per pseudonym (`RedisKeys.ivt_count`, a minute or an hour
each, expiring with it) are a store of their own (`IvtCounters`).

Entries are immutable, so erasure deletes or replaces whole entries:

- already rolled up (at or below the ingestion watermark): XDEL. Events of another id in the
  entry, if any, go too (they are counted in the rollups already): `other_events_dropped`.
- not yet rolled up: XDEL and, in the same atomic call, XADD of a copy whose subject events
  are anonymised (no user id, IP or request id), so the rollups still count them (billing)
  and nothing ties them to anyone. This happens under the ingestion lock, so ingestion never
  holds the old entry in a batch while it is replaced, and the watermark tells the two cases
  apart exactly as ingestion does. The copy is a new entry at the end of the stream.
"""

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol

import msgspec
from django.conf import settings
from django.db.models import F
from django.utils import timezone
from django_redis import get_redis_connection
from redis import Redis
from redis.exceptions import LockError, RedisError

from compliance.models import DataSubjectRequest, RequestKind, RequestStatus
from reporting.conversions.privacy import ConversionStore
from reporting.ivt.privacy import RefundPseudonyms
from reporting.lease import Lease
from reporting.models import StreamWatermark
from reporting.stream import partition_suffix, partitions, stream_id
from reporting.telemetry.privacy import TelemetryFiles
from serving.events import Event, decode_events, encode_events
from serving.keys import RedisKeys

log = logging.getLogger(__name__)

# Progress and partial counts outlive a failed run long enough for someone to run it again.
STATE_TTL = 30 * 86400
# Ingestion holds its lock for one run of a few seconds; waiting longer means it is stuck.
INGEST_LOCK_WAIT = 120
KEY_SCAN_COUNT = 10_000
LOCK_RENEW_EVERY = 1000  # entries rewritten between checks that the ingestion lease holds

# Delete an entry and, if it was still there, add its replacement (if any) and count both.
# KEYS: stream, counts hash. ARGV: entry id, replacement ('' for none), counts' TTL, then
# field/amount pairs.
REWRITE_ENTRY = """
if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then
  return 0
end
if ARGV[2] ~= '' then
  redis.call('XADD', KEYS[1], '*', 'v', ARGV[2])
end
for i = 4, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[2], ARGV[i], tonumber(ARGV[i + 1]))
end
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
return 1
"""

# Delete keys and count those that existed. KEYS: counts hash, keys... ARGV: field, TTL.
DELETE_KEYS = """
local n = 0
for i = 2, #KEYS do
  n = n + redis.call('DEL', KEYS[i])
end
if n > 0 then
  redis.call('HINCRBY', KEYS[1], ARGV[1], n)
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
end
return n
"""


class JobInterrupted(Exception):
    """Raised by a test's fault hook to stop a job between two steps, like a crash would."""


def redis_keys() -> RedisKeys:
    return RedisKeys(settings.REDIS_KEY_PREFIX)


def redis_client() -> Redis:
    return get_redis_connection("default")


def progress_key(request_id: int) -> str:
    """A hash: `total` entries in the stream when the scan started, `scanned` so far."""
    return f"{settings.REDIS_KEY_PREFIX}dsar:{request_id}:progress"


def counts_key(request_id: int) -> str:
    """A hash of what an erasure removed so far, updated atomically with each removal."""
    return f"{settings.REDIS_KEY_PREFIX}dsar:{request_id}:counts"


def progress(request: DataSubjectRequest) -> tuple[int, int]:
    """(scanned, total) stream entries: live from Redis while running, as recorded otherwise."""
    if request.status == RequestStatus.RUNNING:
        raw: Any = redis_client().hmget(progress_key(request.pk), ["scanned", "total"])
        scanned, total = (int(v or 0) for v in raw)
        return min(scanned, total), total
    return request.entries_scanned, request.entries_total


@dataclass
class Job:
    """One run of one request: its pseudonyms and the Redis it works on."""

    request: DataSubjectRequest
    client: Redis
    keys: RedisKeys
    chunk: int
    # A test hook called between steps with the step's name; it may raise to simulate a crash.
    fault: Callable[[str], None] = lambda step: None
    scanned: int = 0
    pseudonyms: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self.pseudonyms = frozenset(self.request.pseudonyms)

    @property
    def counts_key(self) -> str:
        return counts_key(self.request.pk)

    def step(self, name: str) -> None:
        self.fault(name)


class Store(Protocol):
    """Something that holds data keyed by pseudonymous ids."""

    name: str

    def collect(self, job: Job) -> Any:
        """What the store holds for the job's pseudonyms, as JSON-ready data."""
        ...

    def erase(self, job: Job) -> None:
        """Delete it, adding what was deleted to the job's counts hash."""
        ...


def _raw_reader(client: Redis) -> Redis:
    """A client on the same connections whose XRANGE replies stay as Redis sends them
    (`[[id, [field, value, ...]], ...]`): making a dict of every entry costs a quarter of a scan."""
    reader = Redis(connection_pool=client.connection_pool)
    reader.set_response_callback("XRANGE", lambda response, **options: response)
    return reader


def _value(fields: list[bytes] | None) -> bytes:
    if fields and fields[0] == b"v":  # serving writes this one field
        return fields[1]
    pairs = dict(zip((fields or [])[::2], (fields or [])[1::2], strict=True))
    return pairs.get(b"v", b"")


def _matching_entries(job: Job) -> Iterator[tuple[str, str, list[Event]]]:
    """(partition, entry id, events) of the stream entries holding at least one event of the
    subject, partition by partition, oldest first."""
    streams = partitions(job.client, job.keys)
    needles = [p.encode() for p in job.pseudonyms]
    client, key = job.client, progress_key(job.request.pk)
    reader = _raw_reader(client)
    total = sum(int(client.xlen(stream)) for stream in streams)
    client.hset(key, mapping={"total": total, "scanned": 0})
    client.expire(key, STATE_TTL)
    for stream in streams:
        start = "-"
        while True:
            batch: Any = reader.xrange(stream, min=start, count=job.chunk)
            raws = [_value(fields) for _, fields in batch]
            # Bytes are searched before anything is decoded, a whole chunk at once: most
            # chunks hold none of the subject's events, and decoding every entry would cost
            # ten scans.
            blob = b"\n".join(raws)
            if any(n in blob for n in needles):
                for (eid, _), raw in zip(batch, raws, strict=True):
                    if not any(n in raw for n in needles):
                        continue
                    try:
                        events = decode_events(raw)
                    except msgspec.DecodeError:
                        log.error("data-subject request %s: bad entry %s", job.request.pk, eid)
                        continue
                    if any(e.u in job.pseudonyms for e in events):
                        yield stream, eid.decode(), events
            job.scanned += len(batch)
            client.hset(key, "scanned", job.scanned)
            if len(batch) < job.chunk:
                break
            start = "(" + batch[-1][0].decode()


def _iso_ms(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).isoformat(timespec="milliseconds")


# Event fields under names a person can read; a field not named here keeps its own name.
EXPORT_NAMES = {
    "t": "type", "ts": "time", "pl": "placement", "li": "line_item", "cp": "campaign",
    "adv": "advertiser", "cr": "creative", "cpm": "price_cpm_micros", "d": "decision_id",
    "cs": "consent", "u": "pseudonymous_id", "ip": "ip_truncated", "r": "reason", "b": "buyer",
    "rq": "correlation_id", "x": "slot_features",
}  # fmt: skip
EVENT_TYPES = {"req": "ad_request", "imp": "impression", "clk": "click", "err": "creative_error"}


def _exported(entry_id: str, event: Event) -> dict[str, Any]:
    out: dict[str, Any] = {"stream_id": entry_id}
    for name, value in msgspec.structs.asdict(event).items():
        out[EXPORT_NAMES.get(name, name)] = value
    out["time"] = _iso_ms(event.ts)
    out["type"] = EVENT_TYPES.get(event.t, event.t)
    return out


def _owned(events: list[Event], pseudonyms: frozenset[str]) -> list[bool]:
    """Which events of a subject's entry are theirs: all but those carrying another id."""
    return [not e.u or e.u in pseudonyms for e in events]


def _anonymised(event: Event) -> Event:
    # What the rollups count stays; what could tie the event to a person goes.
    return msgspec.structs.replace(event, u="", ip="", d="", rq="", x="")


class EventStream:
    """Raw events in the Redis stream (`RedisKeys.events`)."""

    name = "events"

    def collect(self, job: Job) -> list[dict[str, Any]]:
        return [
            _exported(eid, e)
            for _, eid, events in _matching_entries(job)
            for e, theirs in zip(events, _owned(events, job.pseudonyms), strict=True)
            if theirs
        ]

    def erase(self, job: Job) -> None:
        matches = list(_matching_entries(job))
        job.step("events:scanned")
        if not matches:
            return
        n = 0
        for stream in dict.fromkeys(m[0] for m in matches):
            for_stream = [(eid, events) for s, eid, events in matches if s == stream]
            n = self._erase_in(job, stream, for_stream, n)

    def _erase_in(
        self, job: Job, stream: str, matches: list[tuple[str, list[Event]]], done: int
    ) -> int:
        """Erase the subject's entries in one partition; `done` entries were before it."""
        client = job.client
        rewrite = client.register_script(REWRITE_ENTRY)
        # The partition's ingestion lease (renewed while this runs, expiring seconds after a
        # crash), so ingestion never rolls up an entry while it is being rewritten.
        lease_name = job.keys.ingest_lock + partition_suffix(stream, job.keys)
        lease = Lease(client, lease_name, settings.INGEST_LOCK_SECONDS)
        if not lease.acquire(wait=INGEST_LOCK_WAIT):
            raise LockError("ingestion held its lock too long; run the request again")
        try:
            mark = StreamWatermark.objects.filter(stream=stream).values_list("last_id", flat=True)
            rolled_up = stream_id(mark.first() or "0-0")
            for n, (eid, events) in enumerate(matches, start=done + 1):
                owned = _owned(events, job.pseudonyms)
                theirs = sum(owned)
                if stream_id(eid) <= rolled_up:
                    replacement = b""
                    counts = {"entries_deleted": 1, "events_deleted": theirs}
                    if theirs < len(events):
                        counts["other_events_dropped"] = len(events) - theirs
                else:
                    kept = [_anonymised(e) if o else e for e, o in zip(events, owned, strict=True)]
                    replacement = encode_events(kept)
                    counts = {"entries_replaced": 1, "events_anonymised": theirs}
                args: list[str | int | bytes] = [eid, replacement, STATE_TTL]
                for name, amount in counts.items():
                    args += [name, amount]
                rewrite(keys=[stream, job.counts_key], args=args)
                job.step(f"events:entry:{n}")
                if n % LOCK_RENEW_EVERY == 0:
                    lease.check()  # lost (Redis stalled past it): stop, the job retries
        finally:
            if lease.lost:
                log.warning(
                    "data-subject request %s: the ingestion lock had expired", job.request.pk
                )
            lease.release()
        return done + len(matches)


class FrequencyCaps:
    """Impression counters per pseudonymous id (`RedisKeys.frequency`)."""

    name = "frequency_caps"

    def collect(self, job: Job) -> dict[str, dict[str, int]]:
        held: dict[str, dict[str, int]] = {}
        for p in sorted(job.pseudonyms):
            counters: Any = job.client.hgetall(job.keys.frequency(p))
            if counters:
                held[p] = {k.decode(): int(v) for k, v in sorted(counters.items())}
        return held

    def erase(self, job: Job) -> None:
        keys = [job.keys.frequency(p) for p in sorted(job.pseudonyms)]
        job.client.eval(
            DELETE_KEYS, len(keys) + 1, job.counts_key, *keys, "frequency_caps", STATE_TTL
        )


class SyncTable:
    """Buyers' user ids per pseudonymous id (`RedisKeys.sync`, written by user sync), and the
    syncs in flight (`RedisKeys.sync_state`: a random nonce naming a pseudonym, ten minutes)."""

    name = "user_syncs"

    def _in_flight(self, job: Job) -> list[bytes]:
        wanted = {p.encode() for p in job.pseudonyms}
        found = []
        for key in job.client.scan_iter(match=job.keys.sync_state("*"), count=KEY_SCAN_COUNT):
            value: Any = job.client.get(key)
            if value and value.partition(b"|")[0] in wanted:
                found.append(key)
        return sorted(found)

    def collect(self, job: Job) -> dict[str, dict[str, str]]:
        held: dict[str, dict[str, str]] = {}
        for p in sorted(job.pseudonyms):
            uids: Any = job.client.hgetall(job.keys.sync(p))
            if uids:
                held[p] = {k.decode(): v.decode() for k, v in sorted(uids.items())}
        return held

    def erase(self, job: Job) -> None:
        keys = [job.keys.sync(p) for p in sorted(job.pseudonyms)]
        keys += [key.decode() for key in self._in_flight(job)]
        job.client.eval(DELETE_KEYS, len(keys) + 1, job.counts_key, *keys, self.name, STATE_TTL)


class IvtCounters:
    """Impressions and clicks per pseudonymous id per minute and hour, and the hold of an id
    over its limits (its reason; `serving.ivt.judge`); they expire within about an hour."""

    name = "ivt_counters"

    def _keys(self, job: Job) -> list[bytes]:
        found: set[bytes] = set()
        for p in job.pseudonyms:
            match = job.keys.ivt_count("u", p, "*", 0, 0).removesuffix("0:0") + "*"
            found.update(job.client.scan_iter(match=match, count=KEY_SCAN_COUNT))
            if job.client.exists(job.keys.ivt_hold(p)):
                found.add(job.keys.ivt_hold(p).encode())
        return sorted(found)

    def collect(self, job: Job) -> dict[str, int | str]:
        held: dict[str, int | str] = {}
        for key in self._keys(job):
            value: Any = job.client.get(key) or b"0"
            held[key.decode()] = int(value) if value.isdigit() else value.decode()
        for p in job.pseudonyms:
            since: Any = job.client.zscore(job.keys.ivt_held, p)
            if since is not None:
                held[f"{job.keys.ivt_held} {p}"] = int(since)  # held since (epoch ms)
        return held

    def erase(self, job: Job) -> None:
        keys = [key.decode() for key in self._keys(job)]
        if keys:
            job.client.eval(DELETE_KEYS, len(keys) + 1, job.counts_key, *keys, self.name, STATE_TTL)
        # A held id awaiting its automatic refund: the refund is not made for it.
        if job.pseudonyms:
            job.client.zrem(job.keys.ivt_held, *job.pseudonyms)


class OtherKeys:
    """Any other key under our prefix named after a pseudonym: a safety net for new stores."""

    name = "other_keys"
    handled: ClassVar[tuple[str, ...]] = ("fc:", "sync:", "conv:", "ivt:u:", "ivt:hold:")

    def _keys(self, job: Job) -> list[bytes]:
        prefix = job.keys.prefix
        found: set[bytes] = set()
        for p in job.pseudonyms:
            for key in job.client.scan_iter(match=f"{prefix}*{p}*", count=KEY_SCAN_COUNT):
                name = key.decode()[len(prefix) :]
                if not name.startswith(self.handled):
                    found.add(key)
        return sorted(found)

    def collect(self, job: Job) -> dict[str, Any]:
        held: dict[str, Any] = {}
        for key in self._keys(job):
            reply: Any = job.client.type(key)
            kind = reply.decode()
            value: Any = {
                "string": job.client.get,
                "hash": job.client.hgetall,
                "set": job.client.smembers,
                "list": lambda k: job.client.lrange(k, 0, -1),
                "zset": lambda k: job.client.zrange(k, 0, -1, withscores=True),
            }.get(kind, lambda k: None)(key)
            held[key.decode()] = {"type": kind, "value": _plain(value)}
        return held

    def erase(self, job: Job) -> None:
        keys = self._keys(job)
        if keys:
            job.client.eval(
                DELETE_KEYS, len(keys) + 1, job.counts_key, *keys, "other_keys", STATE_TTL
            )


def _plain(value: Any) -> Any:
    """Redis replies as JSON-ready values (bytes as text)."""
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | set | tuple):
        return [_plain(v) for v in value]
    return value


# The stream before the telemetry files and the conversions: an entry erased there is not
# written to them after.
STORES: tuple[Store, ...] = (
    EventStream(),
    TelemetryFiles(),
    ConversionStore(),
    FrequencyCaps(),
    SyncTable(),
    IvtCounters(),
    RefundPseudonyms(),
    OtherKeys(),
)


def build_export(request: DataSubjectRequest, held: dict[str, Any], now: datetime) -> bytes:
    """The access export: what each store holds for the subject, with what it means."""
    body = {
        "request": {
            "id": request.pk,
            "kind": request.kind,
            "subject_kind": request.subject_kind,
            "fingerprint": request.fingerprint,
            "requested_at": request.requested_at.isoformat(),
            "generated_at": now.isoformat(),
        },
        "pseudonymous_ids": sorted(request.pseudonyms),
        "about": (
            "Data held for the subject under the pseudonymous ids above (keyed hashes of the id, "
            "one per rotation period between window_start and window_end). Raw events keep a "
            "truncated IP address; user_syncs maps each buyer's id to the buyer's own user id "
            "for the subject; reports keep only totals, which hold no personal data."
        ),
        "window_start": request.window_start.isoformat(),
        "window_end": request.window_end.isoformat(),
        **held,
    }
    return msgspec.json.format(msgspec.json.encode(body), indent=2)


def _read_counts(client: Redis, request_id: int) -> dict[str, int]:
    raw: Any = client.hgetall(counts_key(request_id))
    return {k.decode(): int(v) for k, v in sorted(raw.items())}


def _claim(request_id: int) -> bool:
    now = timezone.now()
    return bool(
        DataSubjectRequest.objects.filter(pk=request_id)
        .exclude(status=RequestStatus.DONE)
        .update(status=RequestStatus.RUNNING, started_at=now, runs=F("runs") + 1, error="")
    )


def _record_failure(job: Job, exc: Exception) -> None:
    """Mark the request failed with what it had done, so far as Redis still answers."""
    request = job.request
    failed: dict[str, Any] = {
        "status": RequestStatus.FAILED,
        "error": f"{type(exc).__name__}: {exc}"[:1000],
        "entries_scanned": job.scanned,
        "finished_at": timezone.now(),
    }
    try:
        raw_total: Any = job.client.hget(progress_key(request.pk), "total")
        failed["entries_total"] = int(raw_total or 0)
        if request.kind == RequestKind.ERASURE:
            failed["counts"] = _read_counts(job.client, request.pk)
    except RedisError:
        pass  # the counts stay in Redis for the next run
    DataSubjectRequest.objects.filter(pk=request.pk).update(**failed)


def run_request(request_id: int, *, fault: Callable[[str], None] | None = None) -> str:
    """Run a request's job; once it is done, running it again does nothing."""
    if not _claim(request_id):
        status = (
            DataSubjectRequest.objects.filter(pk=request_id)
            .values_list("status", flat=True)
            .first()
        )
        return status or "gone"
    request = DataSubjectRequest.objects.get(pk=request_id)
    client = redis_client()
    job = Job(request, client, redis_keys(), settings.DSAR_SCAN_CHUNK)
    if fault is not None:
        job.fault = fault
    try:
        if request.kind == RequestKind.ACCESS:
            held = {store.name: store.collect(job) for store in STORES}
            request.export = build_export(request, held, timezone.now()).decode()
            request.counts = {name: len(value) for name, value in held.items()}
        else:
            if not client.exists(job.counts_key) and request.counts:
                # The partial counts of an earlier run outlived their Redis copy.
                client.hset(job.counts_key, mapping=request.counts)
            for store in STORES:
                store.erase(job)
                job.step(f"{store.name}:erased")
            request.counts = _read_counts(client, request_id)
    except Exception as exc:
        log.exception("data-subject request %s stopped", request_id)
        _record_failure(job, exc)
        raise
    raw_total: Any = client.hget(progress_key(request_id), "total")
    total = int(raw_total or 0)
    request.status = RequestStatus.DONE
    request.entries_total, request.entries_scanned = total, min(job.scanned, total)
    request.finished_at = timezone.now()
    request.save(
        update_fields=[
            "status", "export", "counts", "entries_total", "entries_scanned", "finished_at",
        ]
    )  # fmt: skip
    client.delete(progress_key(request_id), job.counts_key)
    return RequestStatus.DONE
