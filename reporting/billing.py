"""Billing is idempotent against the database: one impression and one click per decision.

Serving de-duplicates impressions and clicks with "already counted" marks in Redis; those
die with a Redis that loses its data (no AOF, a failover to an empty replica, a FLUSHALL),
and a replayed tracking URL would then be billed again. Ingestion therefore also records
every (decision id, kind) it bills in `BilledDecision`, in the same transaction as the
rollups and the watermark, and drops an event whose pair is there already: one INSERT ... ON
CONFLICT DO NOTHING RETURNING per batch records the new pairs and names them, no query per
event.

A row is needed only while a replay could still be billed: its token is valid for
SERVING_TOKEN_TTL_SECONDS from issue, so every replay of it is recorded before
recorded_at + TTL. Once ingestion's watermark is past that (plus a margin for clocks), any
replay has been rolled up, and the row can go (`prune_billed_decisions`, on the retention
beat).
"""

import logging
from datetime import UTC, datetime, timedelta

from django.conf import settings

from reporting.measurement.upsert import insert_new
from reporting.models import BilledDecision, BilledKind, StreamWatermark
from serving.events import Event

log = logging.getLogger(__name__)

BILLED_KINDS = frozenset(BilledKind.values)

Entry = tuple[str, list[Event]]
Key = tuple[str, str]  # (decision id, kind)


def _billable(event: Event) -> bool:
    # An erased subject's event keeps no decision id (compliance.dsar): it cannot be replayed
    # by id either, so it is counted as it comes.
    return event.t in BILLED_KINDS and bool(event.d)


def refuse_billed_again(entries: list[Entry]) -> tuple[list[Entry], int]:
    """The entries without impressions and clicks already billed (before or earlier in this
    batch), and how many were refused; records the new ones. Call inside the rollup's
    transaction."""
    first_seen: dict[Key, int] = {}
    for _, events in entries:
        for e in events:
            if e.t in BILLED_KINDS and e.d:
                first_seen.setdefault((e.d, e.t), e.ts)
    if not first_seen:
        return entries, 0
    # One statement records the new pairs and tells which were there before (billed).
    recorded = insert_new(
        BilledDecision, ("decision_id", "kind"), ("decision_id", "kind", "recorded_at"),
        [(d, k, datetime.fromtimestamp(ts / 1000, UTC))
         for (d, k), ts in sorted(first_seen.items())],  # one lock order for every writer
    )  # fmt: skip
    taken = {key for key in first_seen if key not in recorded}
    refused = 0
    kept: list[Entry] = []
    for entry in entries:
        entry_id, events = entry
        if not any(_billable(e) for e in events):
            kept.append(entry)
            continue
        keep = []
        for e in events:
            if _billable(e):
                key = (e.d, e.t)
                if key in taken:
                    refused += 1
                    continue
                taken.add(key)
            keep.append(e)
        kept.append((entry_id, keep))
    if refused:
        log.warning("refused %s impressions/clicks billed before (replayed tracking URLs)", refused)
    return kept, refused


def _stream_time(entry_id: str) -> datetime:
    return datetime.fromtimestamp(int(entry_id.partition("-")[0]) / 1000, UTC)


def prune_billed_decisions(now: datetime) -> int:
    """Delete the billed marks no replay can need any more; returns how many went."""
    marks = StreamWatermark.objects.values_list("last_id", flat=True)
    rolled_up_to = min((_stream_time(m) for m in marks), default=None)
    if rolled_up_to is None:
        return 0  # nothing rolled up yet
    # Replays are recorded before recorded_at + TTL; once ingestion is past that they are in.
    keep = timedelta(
        seconds=settings.SERVING_TOKEN_TTL_SECONDS + settings.BILLED_DECISION_MARGIN_SECONDS
    )
    before = min(now, rolled_up_to) - keep
    deleted, _ = BilledDecision.objects.filter(recorded_at__lt=before).delete()
    return deleted
