from celery import shared_task

from reporting.ingest import ingest_events
from reporting.telemetry.writer import write_telemetry


@shared_task(autoretry_for=(ConnectionError, OSError), retry_backoff=True, max_retries=5)
def ingest_events_task() -> int:
    """Roll the event stream up into hourly rows; returns how many events were counted."""
    return ingest_events().counted


@shared_task(autoretry_for=(ConnectionError, OSError), retry_backoff=True, max_retries=5)
def write_telemetry_task() -> int:
    """Write the event stream to the Parquet telemetry files; returns the entries written."""
    return write_telemetry().written
