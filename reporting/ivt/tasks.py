from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from reporting.ivt.refunds import NotRolledUpYet, refund, refund_held
from reporting.ivt.review import review_ctr


@shared_task(
    autoretry_for=(NotRolledUpYet, ConnectionError),
    retry_backoff=5,
    retry_backoff_max=120,
    max_retries=30,
)
def refund_ivt_task(refund_id: int) -> str:
    """Move a refund's billed events to invalid and reconcile spend; a done one is left."""
    row = refund(refund_id)
    return "gone" if row is None else row.status


@shared_task
def review_ctr_task() -> list[int]:
    """Flag the placements whose CTR in the last complete hour is far above their norm."""
    last_hour = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    return review_ctr(last_hour)


@shared_task(autoretry_for=(ConnectionError,), retry_backoff=5, max_retries=5)
def refund_held_task() -> list[int]:
    """Refund what each newly held pseudonym was billed before its hold, in the background."""
    made = refund_held()  # committed: the refunds exist for their tasks
    for refund_id in made:
        refund_ivt_task.delay(refund_id)
    return made
