import os
from typing import Any

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "adsplatform.settings")

app = Celery("adsplatform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_init.connect
@signals.beat_init.connect
def _refuse_to_start_without_secrets(**kwargs: Any) -> None:
    # The worker signs nothing itself, but it pseudonymises and publishes what serving signs
    # with: a worker or beat without the secrets is a misconfigured deployment, stop early.
    from django.core.exceptions import ImproperlyConfigured

    from adsplatform.secret_keys import require_secrets

    try:
        require_secrets()
    except ImproperlyConfigured as refused:
        # Celery logs and swallows an exception from a signal handler; SystemExit it honours.
        raise SystemExit(f"ImproperlyConfigured: {refused}") from refused
