"""Bulksheet uploads: the recorded dry run, and queueing the apply."""

from functools import partial
from typing import Any

from django.core.files import File
from django.db import transaction

from campaigns.bulk.plan import make_plan
from campaigns.bulk.sheet import SheetError, decode, max_bytes, read, too_large
from campaigns.bulk.steps import Plan
from campaigns.models import Advertiser, BulkUpload
from campaigns.models.bulk import BulkUploadStatus
from campaigns.tasks import apply_bulk_upload_task


def _user(by: Any) -> Any:
    return by if getattr(by, "is_authenticated", False) else None


def _read(file: "File[bytes]") -> bytes:
    # Never read more than the limit into memory, whatever the client says the size is.
    if file.size is not None and file.size > max_bytes():
        raise too_large()
    data = file.read(max_bytes() + 1)
    if len(data) > max_bytes():
        raise too_large()
    return data


def validate_upload(
    *, advertiser: Advertiser, file: "File[bytes]", by: Any
) -> tuple[BulkUpload, Plan | None]:
    """Dry-run a bulksheet and record it as validated or failed; nothing else is written."""
    text, plan = "", None
    try:
        text = decode(_read(file))
        plan = make_plan(read(text), advertiser)
        errors = plan.errors
    except SheetError as exc:
        errors = exc.errors
    errors.sort(key=lambda e: e.row or 0)
    valid = plan is not None and not errors
    upload = BulkUpload.objects.create(
        advertiser=advertiser,
        created_by=_user(by),
        file_name=(file.name or "bulksheet.csv").replace("\x00", "")[-255:],
        content=text if valid else "",
        status=BulkUploadStatus.VALIDATED if valid else BulkUploadStatus.FAILED,
        rows_total=plan.rows_total if plan else 0,
        summary=plan.summary() if plan else {},
        errors=[e.as_dict() for e in errors],
    )
    return upload, plan


def queue_upload(upload: BulkUpload, *, by: Any) -> bool:
    """Queue a validated upload for its apply, once; False when it is not (or no longer) valid."""
    with transaction.atomic():
        queued = BulkUpload.objects.filter(pk=upload.pk, status=BulkUploadStatus.VALIDATED).update(
            status=BulkUploadStatus.QUEUED, applied_by=_user(by)
        )
        if queued:
            transaction.on_commit(partial(apply_bulk_upload_task.delay, upload.pk))
    if not queued:
        upload.refresh_from_db()
        return False
    # As queued, even if a worker picks it up before the caller answers.
    upload.status, upload.applied_by = BulkUploadStatus.QUEUED, _user(by)
    return True
