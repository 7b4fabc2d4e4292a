"""Settings for adsplatform, configured from the environment (django-environ).

One settings module for every deployment (DJANGO_SETTINGS_MODULE=adsplatform.settings), kept
in topic modules that each read their own environment variables:

- base: the environment, the three secrets, Django itself (apps, middleware, database,
  Redis and cache, login throttling, API, logging, mail)
- storage: static files, media, where creatives and telemetry files are stored
- serving, ivt: the serving engine; invalid traffic
- privacy, creatives, pacing, reporting: the apps' own settings
- tasks: Celery and the beat schedule (every periodic job)

A setting added to a topic module must be imported here too, or Django would never see it:
the check at the end refuses to load the settings until it is.

Without DATABASE_URL and REDIS_URL the project runs on the embedded default: SQLite in
var/ and the Redis server that `adsplatform.launch` starts on a socket in var/.
"""

import importlib
import pkgutil
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from adsplatform.settings.base import (
    ALLOWED_HOSTS,
    ASGI_APPLICATION,
    AUTH_PASSWORD_VALIDATORS,
    AUTHENTICATION_BACKENDS,
    AXES_CACHE,
    AXES_COOLOFF_TIME,
    AXES_FAILURE_LIMIT,
    AXES_HANDLER,
    AXES_IPWARE_META_PRECEDENCE_ORDER,
    AXES_IPWARE_PROXY_COUNT,
    AXES_LOCKOUT_CALLABLE,
    AXES_LOCKOUT_PARAMETERS,
    AXES_RESET_ON_SUCCESS,
    BASE_DIR,
    CACHES,
    CSRF_COOKIE_SECURE,
    CSRF_TRUSTED_ORIGINS,
    DATABASES,
    DEBUG,
    DEFAULT_AUTO_FIELD,
    DEFAULT_FROM_EMAIL,
    EMBEDDED_REDIS_SOCKET,
    HTTPS,
    INSTALLED_APPS,
    LANGUAGE_CODE,
    LOG_FORMAT,
    LOGGING,
    LOGIN_REDIRECT_URL,
    LOGIN_URL,
    LOGOUT_REDIRECT_URL,
    MAILERS,
    MIDDLEWARE,
    PSEUDONYM_SECRET,
    REDIS_KEY_PREFIX,
    REDIS_URL,
    REST_FRAMEWORK,
    ROOT_URLCONF,
    SECRET_KEY,
    SECURE_CSP,
    SECURE_HSTS_INCLUDE_SUBDOMAINS,
    SECURE_HSTS_PRELOAD,
    SECURE_HSTS_SECONDS,
    SECURE_PROXY_SSL_HEADER,
    SECURE_SSL_REDIRECT,
    SERVING_SIGNING_KEY,
    SESSION_COOKIE_SECURE,
    SESSION_ENGINE,
    SILENCED_SYSTEM_CHECKS,
    SPECTACULAR_SETTINGS,
    TEMPLATES,
    TIME_ZONE,
    USE_I18N,
    USE_TZ,
    VAR_DIR,
    WSGI_APPLICATION,
)
from adsplatform.settings.creatives import (
    CREATIVE_AUDIO_MAX_BYTES,
    CREATIVE_HTML5_MAX_BYTES,
    CREATIVE_HTML5_MAX_FILES,
    CREATIVE_HTML5_MAX_UNPACKED_BYTES,
    CREATIVE_IMAGE_MAX_BYTES,
    CREATIVE_MAX_DURATION_SECONDS,
    CREATIVE_NATIVE_IMAGE_MAX_BYTES,
    CREATIVE_VIDEO_MAX_BYTES,
    VAST_XSD,
)
from adsplatform.settings.ivt import (
    IVT_CTR_FLAG_MIN_CLICKS,
    IVT_CTR_FLAG_RATIO,
    IVT_DATACENTER_FILE,
    IVT_DATACENTER_URLS,
    IVT_ENABLED,
    IVT_RULES,
    SERVING_CLIENT_IP_HEADER,
)
from adsplatform.settings.pacing import (
    PACING_EVERY_SECONDS,
    PACING_LOCK_SECONDS,
)
from adsplatform.settings.privacy import (
    DSAR_EXPORT_RETENTION_DAYS,
    DSAR_SCAN_CHUNK,
    GDPR_COUNTRIES,
    PSEUDONYM_ROTATION_DAYS,
    RAW_EVENT_RETENTION_SECONDS,
    SYNC_TTL_SECONDS,
)
from adsplatform.settings.reporting import (
    BILLED_DECISION_MARGIN_SECONDS,
    CHANNEL_LAYERS,
    CONVERSION_RETENTION_DAYS,
    DEMAND_DAY_CLOSE_HOURS,
    DEMAND_HOURLY_DAYS,
    EVENT_STREAM_PARTITIONS,
    INGEST_BATCH_SIZE,
    INGEST_LOCK_SECONDS,
    LEARNING_AUTO_PROMOTE,
    LEARNING_C,
    LEARNING_COMPARE_LIGHTGBM,
    LEARNING_CONVERSION_LAG_HOURS,
    LEARNING_EXPLORATION,
    LEARNING_HASH_BITS,
    LEARNING_HOLDOUT_DAYS,
    LEARNING_LIGHTGBM_MIN_GAIN,
    LEARNING_MIN_CONVERSIONS,
    LEARNING_MIN_HOLDOUT_ROWS,
    LEARNING_MIN_ROWS,
    LEARNING_PCTR_CEILING_RATIO,
    LEARNING_PRIOR_CLICKS,
    LEARNING_PRIOR_IMPRESSIONS,
    LEARNING_PROMOTE_MIN_GAIN,
    LEARNING_STATS_DAYS,
    LEARNING_TRAIN_DAYS,
    LEARNING_TS_DRAWS,
    LIVE_EVERY_SECONDS,
    METRICS_CAMPAIGN_LIMIT,
    METRICS_TOKEN,
    READYZ_BEAT_STALE_SECONDS,
    READYZ_INGEST_LAG_LIMIT,
    READYZ_REQUIRED,
    STREAM_BACKLOG_LIMIT,
    TELEMETRY_BATCH_SIZE,
    TELEMETRY_CANDIDATES,
    TELEMETRY_ENABLED,
    TELEMETRY_RETENTION_DAYS,
)
from adsplatform.settings.serving import (
    CDN_BASE_URL,
    FX_MAX_AGE_SECONDS,
    FX_RATES,
    FX_REFRESH_SECONDS,
    FX_SOURCE,
    GEOIP_PATH,
    GVL_PATH,
    GVL_URL,
    GVL_VENDOR_ID,
    SERVING_ACCESS_LOG_SAMPLE,
    SERVING_BODY_TIMEOUT_SECONDS,
    SERVING_BUYER_BREAKER_COOLDOWN_SECONDS,
    SERVING_BUYER_BREAKER_ERROR_RATE,
    SERVING_BUYER_BREAKER_MIN_CALLS,
    SERVING_BUYER_BREAKER_WINDOW_SECONDS,
    SERVING_BUYER_TIMEOUT_MS,
    SERVING_COUNTRY_HEADER,
    SERVING_CURRENCY,
    SERVING_DEFAULT_CTR,
    SERVING_FETCH_ALLOWED_NETWORKS,
    SERVING_PUBLIC_URL,
    SERVING_RATE_LIMIT,
    SERVING_REDIS_TIMEOUT_SECONDS,
    SERVING_REGION_HEADER,
    SERVING_TOKEN_TTL_SECONDS,
)
from adsplatform.settings.storage import (
    CREATIVES_CACHE_CONTROL,
    CREATIVES_S3_BUCKET,
    MEDIA_ROOT,
    MEDIA_URL,
    SERVE_MEDIA,
    STATIC_ROOT,
    STATIC_URL,
    STORAGES,
    TELEMETRY_S3_BUCKET,
)
from adsplatform.settings.tasks import (
    CELERY_ACCEPT_CONTENT,
    CELERY_BEAT_SCHEDULE,
    CELERY_BEAT_SCHEDULER,
    CELERY_BROKER_CONNECTION_MAX_RETRIES,
    CELERY_BROKER_CONNECTION_RETRY,
    CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP,
    CELERY_BROKER_CONNECTION_TIMEOUT,
    CELERY_BROKER_TRANSPORT_OPTIONS,
    CELERY_BROKER_URL,
    CELERY_TASK_ACKS_LATE,
    CELERY_TASK_IGNORE_RESULT,
    CELERY_TASK_SERIALIZER,
    CELERY_TIMEZONE,
    CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS,
    CELERY_WORKER_CONSUMER,
    CELERY_WORKER_PREFETCH_MULTIPLIER,
)

# A setting defined in a topic module but missing above would be silently ignored by Django:
# refuse to load instead.
_MISSING = sorted(
    f"{module.name}.{name}"
    for module in pkgutil.iter_modules(__path__)
    for name in vars(importlib.import_module(f"{__name__}.{module.name}"))
    if name.isupper() and not name.startswith("_") and name not in globals()
)
if _MISSING:
    raise ImproperlyConfigured(f"adsplatform/settings/__init__.py does not import {_MISSING}")
# The package shadows a module of the same name: settings added to a leftover (or re-created)
# adsplatform/settings.py, e.g. by a merge, would be ignored.
if (Path(__file__).parent.parent / "settings.py").exists():
    raise ImproperlyConfigured(
        "adsplatform/settings.py is ignored (adsplatform/settings/ is the settings): move its "
        "settings into the topic modules there"
    )
