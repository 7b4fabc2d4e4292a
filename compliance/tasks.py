import logging

from celery import shared_task
from django.conf import settings
from redis.exceptions import RedisError

from campaigns.snapshot import request_snapshot_publish
from compliance.dsar import run_request
from compliance.gvl import GvlError
from compliance.gvl_store import refresh_gvl
from compliance.retention import purge_personal_data

log = logging.getLogger(__name__)


@shared_task(autoretry_for=(RedisError, OSError), retry_backoff=True, max_retries=5)
def run_data_subject_request_task(request_id: int) -> str:
    """Run an access or erasure request; a repeated delivery finds it done, a retry finishes it."""
    return run_request(request_id)


@shared_task(autoretry_for=(RedisError, OSError), retry_backoff=True, max_retries=3)
def purge_personal_data_task() -> int:
    """Apply the retention rules (beat); returns how many raw events were trimmed."""
    return purge_personal_data().events_trimmed


@shared_task
def refresh_gvl_task() -> str:
    """Load GVL_URL (beat); the last good version stays when it fails. Returns what happened."""
    if not settings.GVL_URL:
        return "off"
    try:
        stored = refresh_gvl()
    except (GvlError, OSError) as error:
        log.warning("Global Vendor List not refreshed, the last good version stays: %s", error)
        return "failed"
    if stored is None:
        return "unchanged"
    request_snapshot_publish()
    return f"v{stored.version}"
