from celery import shared_task

from campaigns.bulk.apply import apply_upload
from campaigns.models import BulkUpload
from campaigns.snapshot import publish_snapshot, redis_client, redis_keys


@shared_task(autoretry_for=(ConnectionError, OSError), retry_backoff=True, max_retries=5)
def publish_snapshot_task() -> int:
    """Publish the serving snapshot (after a committed change, and on the beat)."""
    # Clear the pending mark first: a change committed from now on enqueues another publish.
    redis_client().delete(redis_keys().snapshot_pending)
    return publish_snapshot()


@shared_task
def apply_bulk_upload_task(upload_id: int) -> str:
    """Apply a queued bulksheet, all or nothing; a repeated delivery finds it done."""
    upload = BulkUpload.objects.select_related("advertiser").filter(pk=upload_id).first()
    if upload is None:
        return "gone"
    return apply_upload(upload)
