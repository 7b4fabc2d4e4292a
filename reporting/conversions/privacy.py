"""Conversions under data-subject requests and retention (docs/privacy.md, docs/conversions.md).

A conversion row holds a pseudonym only when the conversion came with an id and consent
allowed it; the post-view touches in Redis (`conv:view:<pseudonym>`, and the short-lived
`conv:dec:<decision>` naming a decision's pseudonym until its impression arrives) are the
subject's too. Access exports them; erasure deletes the rows and the keys, and the
subject's rows of the telemetry `conversions` files (exported with the telemetry store).
Retention deletes rows older than CONVERSION_RETENTION_DAYS; the Redis touches expire by themselves.
"""

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from redis.exceptions import LockError

from reporting.conversions.attribution import decision_key, lease_name, views_key
from reporting.conversions.models import Conversion
from reporting.lease import Lease
from reporting.stream import partitions
from reporting.telemetry.privacy import erase_rows

if TYPE_CHECKING:
    from compliance.dsar import Job

LOCK_WAIT = 30.0
SCAN_COUNT = 10_000
EXPORTED = (
    "event", "value", "currency", "order_id", "converted_at", "source", "attribution",
    "campaign_id", "line_item_id", "decision_id", "touched_at", "pseudonym",
)  # fmt: skip


def _pending_keys(job: "Job") -> list[bytes]:
    """The decisions waiting for their impression that name one of the pseudonyms."""
    wanted = {p.encode() for p in job.pseudonyms}
    found = []
    pattern = decision_key(job.keys, "*")
    for key in job.client.scan_iter(match=pattern, count=SCAN_COUNT):
        value: Any = job.client.get(key)
        if value in wanted:
            found.append(key)
    return sorted(found)


class ConversionStore:
    """Conversion rows and post-view touches of the subject's pseudonyms."""

    name = "conversions"

    def collect(self, job: "Job") -> list[dict[str, Any]]:
        """The subject's conversions, then their post-view touches (one item per campaign)."""
        rows = Conversion.objects.filter(pseudonym__in=job.pseudonyms).order_by("converted_at")
        found: list[dict[str, Any]] = [
            {"kind": "conversion"}
            | {k: v.isoformat() if isinstance(v, datetime) else str(v) for k, v in row.items()}
            for row in rows.values(*EXPORTED)
        ]
        for p in sorted(job.pseudonyms):
            held: Any = job.client.hgetall(views_key(job.keys, p))
            for campaign, touch in sorted(held.items()):
                found.append(
                    {"kind": "post_view_touch", "pseudonym": p,
                     "campaign_id": campaign.decode(), "touch": touch.decode()}
                )  # fmt: skip
        return found

    def erase(self, job: "Job") -> None:
        from compliance.dsar import DELETE_KEYS, STATE_TTL

        # The attribution's leases: no batch read before the stream was erased commits after.
        leases = []
        try:
            for stream in partitions(job.client, job.keys):
                lease = Lease(
                    job.client, lease_name(job.keys, stream), settings.INGEST_LOCK_SECONDS
                )
                if not lease.acquire(wait=LOCK_WAIT):
                    raise LockError("conversion attribution held its lock too long; run it again")
                leases.append(lease)
            deleted, _ = Conversion.objects.filter(pseudonym__in=job.pseudonyms).delete()
            # Their rows in the telemetry files, which this job writes (under these leases).
            erase_rows(job, "conversions")
            if deleted:
                job.client.hincrby(job.counts_key, "conversions_deleted", deleted)
            keys = [views_key(job.keys, p) for p in sorted(job.pseudonyms)]
            keys += [k.decode() for k in _pending_keys(job)]
            job.client.eval(
                DELETE_KEYS, len(keys) + 1, job.counts_key, *keys, "conversion_touches", STATE_TTL
            )
        finally:
            for lease in leases:
                lease.release()


def purge_old_conversions(now: datetime) -> int:
    """Delete conversions older than CONVERSION_RETENTION_DAYS; returns how many went."""
    before = now - timedelta(days=settings.CONVERSION_RETENTION_DAYS)
    deleted, _ = Conversion.objects.filter(converted_at__lt=before).delete()
    return deleted
