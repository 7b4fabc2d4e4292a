from datetime import datetime
from typing import Any

from celery import shared_task
from django.conf import settings
from django.utils import timezone
from django_redis import get_redis_connection
from redis import Redis

from reporting.conversions.attribution import attribute_conversions
from reporting.ingest import ingest_events
from reporting.learning.pcvr import run_pcvr_learning
from reporting.learning.services import run_learning
from reporting.lease import Lease
from reporting.live.publisher import publish_live
from reporting.measurement.rollup import roll_up_days
from reporting.stream import partitions
from reporting.telemetry.writer import write_telemetry
from serving.keys import RedisKeys


@shared_task(autoretry_for=(ConnectionError, OSError), retry_backoff=True, max_retries=5)
def ingest_events_task(partition: int | None = None) -> int:
    """Roll the event stream up into hourly rows; returns how many events were counted.

    With several partitions (EVENT_STREAM_PARTITIONS) beat's run hands each partition to a
    task of its own, so as many workers as there are partitions roll up at once."""
    if partition is None and settings.EVENT_STREAM_PARTITIONS > 1:
        client = get_redis_connection("default")
        for n in range(len(partitions(client, RedisKeys(settings.REDIS_KEY_PREFIX)))):
            ingest_events_task.delay(partition=n)
        return 0
    return ingest_events(partition=partition).counted


@shared_task(autoretry_for=(ConnectionError, OSError), retry_backoff=True, max_retries=5)
def write_telemetry_task() -> int:
    """Write the event stream to the Parquet telemetry files; returns the entries written."""
    return write_telemetry().written


@shared_task
def publish_live_task() -> int:
    """Push the live dashboard's figures to the pages watching; returns the messages sent.
    Not retried: the next tick, a second or two later, sends fresher ones."""
    return publish_live()


@shared_task(autoretry_for=(ConnectionError, OSError), retry_backoff=True, max_retries=5)
def attribute_conversions_task() -> int:
    """Attribute the stream's conversions to decisions; returns the conversion rows written."""
    return attribute_conversions().conversions


@shared_task(autoretry_for=(ConnectionError, OSError), retry_backoff=True, max_retries=5)
def roll_up_days_task() -> int:
    """Roll measurement hours older than DEMAND_HOURLY_DAYS into daily rows (exactly once)."""
    return roll_up_days()[0]


@shared_task(autoretry_for=(ConnectionError,), retry_backoff=True, max_retries=3)
def train_ctr_model_task(now: str | None = None) -> dict[str, Any] | None:
    """Train, evaluate and maybe promote a pCTR model, then a pCVR model where conversions
    allow; returns the new versions' ids and why no pCVR model was trained, when none was."""
    client: Redis = get_redis_connection("default")
    lease = Lease(client, f"{RedisKeys(settings.REDIS_KEY_PREFIX).ingest_lock}:learning", 30.0)
    if not lease.acquire():
        return None  # another run is training
    try:
        when = datetime.fromisoformat(now) if now else timezone.now()
        version = run_learning(when)
        pcvr = run_pcvr_learning(when)
    finally:
        lease.release()
    return {
        "pctr": version.pk if version is not None else None,
        "pcvr": pcvr.version.pk if pcvr.version is not None else None,
        "pcvr_note": pcvr.note,
    }


# The invalid-traffic area's tasks live in its own package; imported so the worker has them.
from reporting.ivt.tasks import refund_ivt_task, review_ctr_task  # noqa: E402, F401
