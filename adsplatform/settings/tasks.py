"""Celery: the broker, the worker, and the beat schedule (every periodic job in one place)."""

from datetime import timedelta

from celery.schedules import schedule

from adsplatform.settings.base import REDIS_KEY_PREFIX, REDIS_URL, env
from adsplatform.settings.pacing import PACING_EVERY_SECONDS
from adsplatform.settings.reporting import LIVE_EVERY_SECONDS
from adsplatform.settings.serving import FX_REFRESH_SECONDS


def _celery_broker_url(redis_url: str) -> str:
    # kombu spells a Redis unix socket "redis+socket://"; redis-py spells it "unix://".
    if redis_url.startswith("unix://"):
        path, _, query = redis_url.removeprefix("unix://").partition("?")
        db = dict(p.split("=", 1) for p in query.split("&") if "=" in p).get("db", "0")
        return f"redis+socket://{path}?virtual_host={db}"
    return redis_url


# Celery: Redis is the broker; results are not kept (every task records its own outcome).
CELERY_BROKER_URL = _celery_broker_url(REDIS_URL)
# The broker's queues and bindings live under our prefix too. Redis outages: every socket
# has a timeout (a hung Redis cannot hang the worker), a timed-out command is retried, idle
# connections are health-checked before use, and (below) the worker reconnects for ever
# with capped backoff, so worker and beat ride out an outage and resume (docs/deploy.md,
# tests/faults/test_celery_redis_outage.py).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "global_keyprefix": REDIS_KEY_PREFIX,
    "socket_timeout": 10,
    "socket_connect_timeout": 5,
    "socket_keepalive": True,
    "retry_on_timeout": True,
    "health_check_interval": 25,
}
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None  # for ever: an outage ends, a dead worker does not
CELERY_BROKER_CONNECTION_TIMEOUT = 5
# Celery's own consumer exits on a broker outage with tasks in flight (see the module).
CELERY_WORKER_CONSUMER = "adsplatform.celery_consumer:OutageTolerantConsumer"
# A task running when the connection drops cannot be acknowledged any more and will be
# redelivered: stop it rather than let it finish twice (Celery 6's default).
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
# Two beats may run at once (a standby host): each periodic task is sent once per period,
# by whichever claims the period's slot in Redis first (adsplatform/beat.py).
CELERY_BEAT_SCHEDULER = "adsplatform.beat:TickLockScheduler"
CELERY_BEAT_SCHEDULE = {
    # The snapshot is republished after every committed change; the beat is the safety net
    # that repairs a lost publish (a worker that died between commit and publish).
    "publish-snapshot": {
        "task": "campaigns.tasks.publish_snapshot_task",
        "schedule": schedule(env.float("SNAPSHOT_REPUBLISH_SECONDS", default=60.0)),
    },
    "ingest-events": {
        "task": "reporting.tasks.ingest_events_task",
        "schedule": schedule(env.float("INGEST_EVERY_SECONDS", default=5.0)),
    },
    # A newer Global Vendor List from GVL_URL (settings.serving).
    "refresh-gvl": {
        "task": "compliance.tasks.refresh_gvl_task",
        "schedule": schedule(env.float("GVL_REFRESH_SECONDS", default=6 * 3600.0)),
    },
    # The ECB's reference rates from FX_SOURCE (settings.serving).
    "refresh-fx-rates": {
        "task": "campaigns.tasks.refresh_fx_rates_task",
        "schedule": schedule(FX_REFRESH_SECONDS),
    },
    # Data-center prefixes from IVT_DATACENTER_FILE and IVT_DATACENTER_URLS (settings.ivt).
    "refresh-datacenter-ranges": {
        "task": "serving.tasks.refresh_datacenter_ranges_task",
        "schedule": schedule(env.float("IVT_DATACENTER_REFRESH_SECONDS", default=6 * 3600.0)),
    },
    "review-ctr": {
        "task": "reporting.ivt.tasks.review_ctr_task",
        "schedule": schedule(3600.0),
    },
    # Pseudonyms newly held over their IVT rate limits: their billed events before it.
    "refund-held-pseudonyms": {
        "task": "reporting.ivt.tasks.refund_held_task",
        "schedule": schedule(60.0),
    },
    # Raw events past RAW_EVENT_RETENTION_SECONDS (never before they are rolled up),
    # frequency-cap hashes left without an expiry, and old access exports are purged this
    # often (settings.privacy).
    "purge-personal-data": {
        "task": "compliance.tasks.purge_personal_data_task",
        "schedule": schedule(env.float("PRIVACY_PURGE_EVERY_SECONDS", default=600.0)),
    },
    # The pacing controller's tick; one that waited longer than its period is dropped.
    "run-pacing": {
        "task": "campaigns.tasks.run_pacing_task",
        "schedule": schedule(PACING_EVERY_SECONDS),
        "options": {"expires": PACING_EVERY_SECONDS},
    },
    # Redis spend counters are brought up to the rollups (the truth) this often: a Redis that
    # loses its data loses at most this long of spend (the controller also repairs a day it
    # finds unreconciled at its next tick).
    "reconcile-spend": {
        "task": "campaigns.tasks.reconcile_spend_task",
        "schedule": schedule(env.float("PACING_RECONCILE_EVERY_SECONDS", default=10.0)),
    },
    "publish-live": {
        "task": "reporting.tasks.publish_live_task",
        "schedule": schedule(LIVE_EVERY_SECONDS),
        "options": {"expires": LIVE_EVERY_SECONDS},
    },
    "write-telemetry": {
        "task": "reporting.tasks.write_telemetry_task",
        "schedule": schedule(env.float("TELEMETRY_EVERY_SECONDS", default=60.0)),
    },
    "attribute-conversions": {
        "task": "reporting.tasks.attribute_conversions_task",
        "schedule": schedule(env.float("CONVERSIONS_EVERY_SECONDS", default=10.0)),
    },
    "roll-up-demand-days": {
        "task": "reporting.tasks.roll_up_days_task",
        "schedule": schedule(env.float("DEMAND_ROLLUP_SECONDS", default=3600.0)),
    },
    "train-ctr-model": {
        "task": "reporting.tasks.train_ctr_model_task",
        "schedule": schedule(timedelta(hours=env.float("LEARNING_EVERY_HOURS", default=24.0))),
    },
}
