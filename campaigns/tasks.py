import logging

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from campaigns.bulk.apply import apply_upload
from campaigns.fx.rates import FxError
from campaigns.fx.services import refresh_fx_rates
from campaigns.models import BulkUpload
from campaigns.pacing.services import reconcile_spend, run_pacing
from campaigns.snapshot import (
    publish_snapshot,
    redis_client,
    redis_keys,
    request_snapshot_publish,
)

log = logging.getLogger(__name__)


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


# Pacing (docs/pacing.md): the controller's tick and the reconciliation with the rollups. A
# tick that waited in the queue past the next one is dropped by its expiry (beat entry).
@shared_task(autoretry_for=(ConnectionError, OSError), retry_backoff=True, max_retries=2)
def run_pacing_task() -> int:
    """One pacing controller tick; returns how many line items it throttles."""
    return run_pacing(timezone.now()).throttled


@shared_task(autoretry_for=(ConnectionError, OSError), retry_backoff=True, max_retries=5)
def reconcile_spend_task() -> int:
    """Bring the Redis spend counters up to the rollups; returns the billionths repaired."""
    return reconcile_spend(timezone.now()).repaired


# FX (README "Serving"): reference rates from FX_SOURCE on the beat; the last good set stays
# when a fetch fails, and the next snapshot carries the new table.
@shared_task
def refresh_fx_rates_task() -> str:
    """Load FX_SOURCE's reference rates; returns the day loaded, "off" or "failed"."""
    if not settings.FX_SOURCE:
        return "off"
    try:
        loaded = refresh_fx_rates()
    except (FxError, OSError) as error:
        log.warning("FX rates not refreshed, the last good set stays: %s", error)
        return "failed"
    request_snapshot_publish()
    return loaded.rates_date.isoformat()
