from celery import shared_task
from redis.exceptions import RedisError

from compliance.dsar import run_request
from compliance.retention import purge_personal_data


@shared_task(autoretry_for=(RedisError, OSError), retry_backoff=True, max_retries=5)
def run_data_subject_request_task(request_id: int) -> str:
    """Run an access or erasure request; a repeated delivery finds it done, a retry finishes it."""
    return run_request(request_id)


@shared_task(autoretry_for=(RedisError, OSError), retry_backoff=True, max_retries=3)
def purge_personal_data_task() -> int:
    """Apply the retention rules (beat); returns how many raw events were trimmed."""
    return purge_personal_data().events_trimmed
