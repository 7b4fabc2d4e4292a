"""The telemetry files under data-subject requests and retention (docs/privacy.md).

Only `decisions` rows (with a truncated IP) and `conversions` rows carry a pseudonymous id,
and only where consent allowed it. Erasure rewrites each file holding one of the subject's
rows without them (same name); the outcome rows keep their decision id, which then names no
one. Access exports the rows. The decisions are erased here under the telemetry writer's
lease; the conversions by `reporting.conversions.privacy` under the attribution's leases
(their writer), through `erase_rows`. Retention deletes whole hour partitions older than
`TELEMETRY_RETENTION_DAYS`.
"""

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
from django.conf import settings
from redis.exceptions import LockError

from reporting.lease import Lease
from reporting.telemetry.files import read_table, storage, walk, write_table
from reporting.telemetry.writer import GROUP

if TYPE_CHECKING:
    from compliance.dsar import Job

LOCK_WAIT = 30.0


PERSONAL_DATASETS = ("decisions", "conversions")


def _theirs(table: pa.Table, pseudonyms: frozenset[str]) -> Any:
    return pc.fill_null(pc.is_in(table["pseudonymous_id"], pa.array(sorted(pseudonyms))), False)


def erase_rows(job: "Job", dataset: str, lease: Lease | None = None) -> int:
    """Rewrite the dataset's files without the subject's rows; counts and returns them."""
    erased = 0
    for name in list(walk(dataset)):
        table = read_table(name)
        theirs = _theirs(table, job.pseudonyms)
        n = pc.sum(theirs).as_py() or 0
        if not n:
            continue
        kept = table.filter(pc.invert(theirs))
        if kept.num_rows:
            write_table(name, kept)
        else:
            storage().delete(name)
        job.client.hincrby(job.counts_key, "telemetry_rows_deleted", n)
        erased += n
        if lease is not None:
            lease.check()
    return erased


class TelemetryFiles:
    """Decision and conversion rows in the Parquet telemetry files (`reporting/telemetry`)."""

    name = "telemetry"

    def collect(self, job: "Job") -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for dataset in PERSONAL_DATASETS:
            for name in walk(dataset):
                table = read_table(name)
                for row in table.filter(_theirs(table, job.pseudonyms)).to_pylist():
                    for key in ("ts", "touched_at"):
                        if row.get(key) is not None:
                            row[key] = row[key].isoformat()
                    row["file"] = name
                    found.append(row)
        return found

    def erase(self, job: "Job") -> None:
        # The writer's lease: no batch read before the stream was erased is written after.
        lease = Lease(job.client, f"{job.keys.ingest_lock}:{GROUP}", settings.INGEST_LOCK_SECONDS)
        if not lease.acquire(wait=LOCK_WAIT):
            raise LockError("the telemetry writer held its lock too long; run the request again")
        try:
            erase_rows(job, "decisions", lease)
        finally:
            lease.release()


def purge_old_files(now: datetime) -> int:
    """Delete the files of hours older than TELEMETRY_RETENTION_DAYS; returns how many."""
    cutoff = (now - timedelta(days=settings.TELEMETRY_RETENTION_DAYS)).strftime("%Y-%m-%d")
    deleted = 0
    for name in list(walk()):
        date = next((p[5:] for p in name.split("/") if p.startswith("date=")), "")
        if date and date < cutoff:
            storage().delete(name)
            deleted += 1
    return deleted
