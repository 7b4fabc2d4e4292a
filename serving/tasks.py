import logging

from celery import shared_task
from django.conf import settings
from django_redis import get_redis_connection

from serving.ivt.refresh import RangesError, refresh_datacenter_ranges
from serving.keys import RedisKeys

log = logging.getLogger(__name__)


@shared_task(autoretry_for=(ConnectionError,), retry_backoff=True, max_retries=5)
def refresh_datacenter_ranges_task() -> str:
    """Publish the data-center list to serving; a failing source keeps the last good one."""
    keys = RedisKeys(settings.REDIS_KEY_PREFIX)
    try:
        version, count = refresh_datacenter_ranges(get_redis_connection("default"), keys)
    except (RangesError, OSError) as exc:
        log.warning("data-center list not refreshed, the last good one stays: %s", exc)
        return f"kept: {exc}"
    return f"published {version}: {count} prefixes"
