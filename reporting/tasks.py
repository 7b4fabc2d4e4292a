from celery import shared_task

from reporting.ingest import ingest_events


@shared_task(autoretry_for=(ConnectionError, OSError), retry_backoff=True, max_retries=5)
def ingest_events_task() -> int:
    """Roll the event stream up into hourly rows; returns how many events were counted."""
    return ingest_events().counted
