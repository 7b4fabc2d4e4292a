import os
from typing import Any

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "adsplatform.settings")

app = Celery("adsplatform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def _json_logging(loglevel: Any = None, **kwargs: Any) -> None:
    # Connected, this receiver stops Celery from installing its own handlers: the worker's
    # and beat's records become JSON lines through Django's LOGGING, like the rest.
    import logging.config

    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
    if loglevel:
        logging.getLogger().setLevel(loglevel)


# Read from the environment, not the settings (this module is imported while the settings
# load): LOG_FORMAT=json in a Celery process's environment makes its logs JSON lines; with
# text (the default) Celery keeps its own format.
if os.environ.get("LOG_FORMAT") == "json":
    signals.setup_logging.connect(_json_logging)


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
