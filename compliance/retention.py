"""Retention: personal data is deleted on schedule (Celery beat, `purge_personal_data_task`).

- Raw events leave the stream `RAW_EVENT_RETENTION_SECONDS` after they were written, but
  never before ingestion has rolled them up: the bound is the oldest of the retention cutoff,
  one past the ingestion watermark (committed with the rollups), one past the group's last
  delivered entry, and the oldest entry the group has not acknowledged. Ingestion applies the
  same rule (without the group checks) after each of its runs; this task is the backstop that
  keeps the promise when ingestion is idle. Rollups are never touched.
- Frequency-cap hashes should carry an expiry set by serving; one that has none gets one
  rotation period, after which its pseudonym can no longer occur.
- Access exports are emptied `DSAR_EXPORT_RETENTION_DAYS` after they were made.
- Billed-decision marks (no personal data, `reporting.billing`) go once no replay of their
  token can be billed any more.
- Conversions go `CONVERSION_RETENTION_DAYS` after they happened; post-view touches in Redis
  carry an expiry of MAX_POST_VIEW_DAYS (one left without it gets it here).
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone
from redis import Redis
from redis.exceptions import ResponseError

from campaigns.models.core import MAX_POST_VIEW_DAYS
from compliance.dsar import redis_client, redis_keys
from compliance.models import DataSubjectRequest
from compliance.pseudonym import DAY
from reporting.billing import prune_billed_decisions
from reporting.conversions.attribution import floor as attributed_floor
from reporting.conversions.attribution import views_key
from reporting.conversions.privacy import purge_old_conversions
from reporting.ingest import GROUP, check_backlog
from reporting.models import StreamWatermark
from reporting.stream import partitions
from reporting.telemetry.privacy import purge_old_files
from reporting.telemetry.writer import floor as telemetry_floor

log = logging.getLogger(__name__)

StreamId = tuple[int, int]
SCAN_COUNT = 1000

# Give keys without an expiry one; returns how many needed it. KEYS: keys. ARGV: seconds.
EXPIRE_IF_PERSISTENT = """
local n = 0
for _, key in ipairs(KEYS) do
  if redis.call('TTL', key) == -1 then
    redis.call('EXPIRE', key, tonumber(ARGV[1]))
    n = n + 1
  end
end
return n
"""


@dataclass
class PurgeResult:
    events_trimmed: int = 0
    # Entries past retention kept because ingestion has not rolled them up yet.
    events_held_back: bool = False
    caps_given_expiry: int = 0
    syncs_given_expiry: int = 0
    exports_deleted: int = 0
    # Billed-decision marks past the time any replay of their token could be billed.
    billed_decisions_pruned: int = 0
    # Telemetry files of hours past TELEMETRY_RETENTION_DAYS (reporting/telemetry).
    telemetry_files_deleted: int = 0
    # Conversions past CONVERSION_RETENTION_DAYS, and post-view touches given an expiry.
    conversions_deleted: int = 0
    touches_given_expiry: int = 0


def _parse(entry_id: Any) -> StreamId:
    text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def _after(entry: StreamId) -> StreamId:
    return entry[0], entry[1] + 1


def _group(client: Redis, stream: str) -> dict[str, Any] | None:
    try:
        groups: Any = client.xinfo_groups(stream)
    except ResponseError:  # no stream yet
        return None
    for group in groups:
        name = group["name"]
        if (name.decode() if isinstance(name, bytes) else name) == GROUP:
            return dict(group)
    return None


def keep_from(client: Redis, stream: str, cutoff: StreamId) -> StreamId | None:
    """The lowest stream id that must stay; None when nothing may be trimmed yet."""
    mark = StreamWatermark.objects.filter(stream=stream).values_list("last_id", flat=True).first()
    group = _group(client, stream)
    if not mark or group is None:
        return None  # nothing was ever rolled up
    bound = min(cutoff, _after(_parse(mark)), _after(_parse(group["last-delivered-id"])))
    # The telemetry files' writer and the conversions' attribution, once they have started.
    for written in (telemetry_floor(stream), attributed_floor(stream)):
        if written:
            bound = min(bound, _after(_parse(written)))
    if group["pending"]:
        summary: Any = client.xpending(stream, GROUP)
        if summary["min"] is not None:
            bound = min(bound, _parse(summary["min"]))
    return bound


def purge_raw_events(client: Redis, stream: str, now: datetime) -> tuple[int, bool]:
    """Trim entries past retention that ingestion is done with: (trimmed, held back)."""
    cutoff_ms = int(now.timestamp() * 1000) - settings.RAW_EVENT_RETENTION_SECONDS * 1000
    cutoff = (cutoff_ms, 0)
    bound = keep_from(client, stream, cutoff)
    if bound is None:
        return 0, bool(client.xrange(stream, max=f"{cutoff_ms - 1}", count=1))
    # Exact, not "~": retention is a promise about personal data, not a memory hint.
    trimmed = int(client.xtrim(stream, minid=f"{bound[0]}-{bound[1]}", approximate=False))
    held_back = bound < cutoff and bool(client.xrange(stream, max=f"{cutoff_ms - 1}", count=1))
    return trimmed, held_back


def expire_frequency_caps(client: Redis, pattern: str, seconds: int) -> int:
    """Give frequency-cap hashes left without an expiry one; returns how many needed it."""
    script = client.register_script(EXPIRE_IF_PERSISTENT)
    fixed, batch = 0, []
    for key in client.scan_iter(match=pattern, count=SCAN_COUNT):
        batch.append(key)
        if len(batch) >= SCAN_COUNT:
            fixed += int(script(keys=batch, args=[seconds]))
            batch = []
    if batch:
        fixed += int(script(keys=batch, args=[seconds]))
    return fixed


def delete_old_exports(now: datetime) -> int:
    """Empty access exports made more than DSAR_EXPORT_RETENTION_DAYS ago."""
    before = now - timedelta(days=settings.DSAR_EXPORT_RETENTION_DAYS)
    return DataSubjectRequest.objects.with_stale_export(before).update(export="")


def purge_personal_data(now: datetime | None = None) -> PurgeResult:
    """Apply every retention rule once."""
    now = now or timezone.now()
    client, keys = redis_client(), redis_keys()
    result = PurgeResult()
    streams = partitions(client, keys)
    for stream in streams:
        trimmed, held_back = purge_raw_events(client, stream, now)
        result.events_trimmed += trimmed
        result.events_held_back = result.events_held_back or held_back
    check_backlog(client, keys, streams)  # held back for long: the stream's growth is reported
    if result.events_held_back:
        log.warning("raw events past retention are kept: ingestion has not rolled them up")
    result.caps_given_expiry = expire_frequency_caps(
        client, keys.frequency("*"), settings.PSEUDONYM_ROTATION_DAYS * DAY
    )
    # Serving sets SYNC_TTL_SECONDS on every sync; a table left without one (a failed EXPIRE)
    # gets it here.
    result.syncs_given_expiry = expire_frequency_caps(
        client, keys.sync("*"), settings.SYNC_TTL_SECONDS
    )
    result.exports_deleted = delete_old_exports(now)
    result.billed_decisions_pruned = prune_billed_decisions(now)
    result.telemetry_files_deleted = purge_old_files(now)
    result.conversions_deleted = purge_old_conversions(now)
    result.touches_given_expiry = expire_frequency_caps(
        client, views_key(keys, "*"), MAX_POST_VIEW_DAYS * DAY
    )
    log.info("retention purge: %s", result)
    return result
