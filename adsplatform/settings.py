"""Settings for adsplatform: one module, configured from the environment (django-environ).

Without DATABASE_URL and REDIS_URL the project runs on the embedded default: SQLite in
var/ and the Redis server that `adsplatform.launch` starts on a socket in var/.
"""

import os
from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import schedule
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP
from psycopg_pool import ConnectionPool

from adsplatform.logs import formatters as log_formatters
from adsplatform.secret_keys import REQUIRED_SECRETS, demo_secrets
from campaigns.fx.rates import FxError, parse_fx_setting
from compliance.geography import GDPR_COUNTRIES as DEFAULT_GDPR_COUNTRIES
from compliance.geography import parse_country_list

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DJANGO_DEBUG", default=False)
# No secret default outside DEBUG, and none derived from a constant: a deployment sets
# DJANGO_SECRET_KEY, SERVING_SIGNING_KEY and PSEUDONYM_SECRET, and the web server, worker and
# beat refuse to start without them (adsplatform.secret_keys). A DEBUG run without them uses
# random ones generated once into var/ (the demo's).
_ALL_SECRETS_SET = all(env.str(name, default="") for name in REQUIRED_SECRETS)
_DEMO_SECRETS = demo_secrets(VAR_DIR) if DEBUG and not _ALL_SECRETS_SET else {}
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=_DEMO_SECRETS.get("DJANGO_SECRET_KEY"))
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# --- TLS, cookies and headers (issue 12 item 13; docs/deploy.md) -----------------------------
# DJANGO_HTTPS=true (production behind TLS) turns on the redirect to HTTPS, secure cookies
# and a year of HSTS; each can still be set on its own. Off by default so that the demo and
# the tests run on plain HTTP. `manage.py check --deploy` is clean with them on (CI checks).
HTTPS = env.bool("DJANGO_HTTPS", default=False)
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=HTTPS)
SESSION_COOKIE_SECURE = env.bool("DJANGO_SESSION_COOKIE_SECURE", default=HTTPS)
CSRF_COOKIE_SECURE = env.bool("DJANGO_CSRF_COOKIE_SECURE", default=HTTPS)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=365 * 86400 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=HTTPS)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto (and strips it from clients).
if env.bool("DJANGO_TRUST_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# The serving endpoints never pass through Django, so their ad markup gets none of this; the
# dashboard, admin and API docs do. Inline event handlers in the templates (onchange,
# onsubmit confirmations) still need 'unsafe-inline' for scripts; everything else is locked
# to our own origin and the creatives' CDN.
_CDN_ORIGIN = env.str("CDN_BASE_URL", default="").split("/", 3)[:3]
_CDN = ["/".join(_CDN_ORIGIN)] if len(_CDN_ORIGIN) == 3 else []
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:", *_CDN],
    "media-src": [CSP.SELF, *_CDN],
    "frame-src": [CSP.SELF, *_CDN],
    "connect-src": [CSP.SELF],
    "font-src": [CSP.SELF, "data:"],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.SELF],
}
# --- End of TLS, cookies and headers ----------------------------------------------------------

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "axes",
    "campaigns",
    "creatives",
    "reporting",
    "compliance",
    "serving",
]

MIDDLEWARE = [
    "adsplatform.logs.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "adsplatform.api.middleware.RejectNullCharactersMiddleware",
    "adsplatform.unavailable.DatabaseUnavailableMiddleware",
    # Last, as django-axes requires: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "adsplatform.urls"
WSGI_APPLICATION = "adsplatform.wsgi.application"
ASGI_APPLICATION = "adsplatform.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "campaigns.organisations.organisation_context",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(exist_ok=True)
    # The web server and the Celery worker write concurrently: WAL lets readers run during a
    # write and IMMEDIATE makes a writer wait for the lock instead of failing mid-transaction.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    # The test database is a file of its own per run, not Django's default shared-cache
    # in-memory database: shared cache locks whole tables and answers "database table is
    # locked" at once (no busy timeout) when the Celery worker thread of a test writes while
    # the test thread reads. A file gets WAL and the timeout above, as in production.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}
else:
    # Under ASGI Django runs each request in a thread of its own, so persistent connections
    # (CONN_MAX_AGE > 0) meant one Postgres connection per request left open for a minute: a
    # burst of requests exhausted the server. psycopg's pool instead: each process holds at
    # most DB_POOL_MAX_SIZE connections, a request borrows one and gives it back at its end
    # (a request finding none free waits up to DB_POOL_TIMEOUT seconds, then fails with a
    # 503). Budget: (web workers + Celery processes) x DB_POOL_MAX_SIZE < max_connections.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DB_POOL_MIN_SIZE", default=1),
        "max_size": env.int("DB_POOL_MAX_SIZE", default=4),
        "timeout": env.float("DB_POOL_TIMEOUT", default=10.0),
        # A connection idle this long is closed; one Postgres dropped is noticed on checkout.
        "max_idle": 300.0,
        "check": ConnectionPool.check_connection,
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The embedded Redis listens on a socket in var/ (see adsplatform.launch).
EMBEDDED_REDIS_SOCKET = VAR_DIR / "redis.sock"
REDIS_URL = env.str("REDIS_URL", default=f"unix://{EMBEDDED_REDIS_SOCKET}?db=0")
# Every key this project writes to Redis starts with this, so one Redis can serve several
# deployments and the tests can clean up exactly what they wrote.
REDIS_KEY_PREFIX = env.str("REDIS_KEY_PREFIX", default="ads:")


def _celery_broker_url(redis_url: str) -> str:
    # kombu spells a Redis unix socket "redis+socket://"; redis-py spells it "unix://".
    if redis_url.startswith("unix://"):
        path, _, query = redis_url.removeprefix("unix://").partition("?")
        db = dict(p.split("=", 1) for p in query.split("&") if "=" in p).get("db", "0")
        return f"redis+socket://{path}?virtual_host={db}"
    return redis_url


CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": f"{REDIS_KEY_PREFIX}cache",
        # A hung Redis must not hang dashboard requests (sessions live in this cache).
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 5, "SOCKET_TIMEOUT": 5},
    }
}
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# --- Login throttling (issue 12 item 12; docs/deploy.md) ----------------------------------
# django-axes counts failed logins on /accounts/login/ and /admin/login/ per account and
# client address together; past AXES_FAILURE_LIMIT that pair is refused, right password or
# not, for AXES_COOLOFF_MINUTES. Counts live in the Redis cache and expire with the cool-off,
# so no login attempt (a username and an address: personal data) is stored in the database.
AUTHENTICATION_BACKENDS = [
    "adsplatform.lockout.LoginThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "axes.handlers.cache.AxesCacheHandler"
AXES_CACHE = "default"
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "adsplatform.lockout.lockout_response"
# Behind a proxy or load balancer the client address is the one it adds to X-Forwarded-For:
# set the number of proxies in front (0: REMOTE_ADDR, the direct peer).
AXES_IPWARE_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0) or None
AXES_IPWARE_META_PRECEDENCE_ORDER = (
    ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"] if AXES_IPWARE_PROXY_COUNT else ["REMOTE_ADDR"]
)
# --- End of Login throttling -------------------------------------------------------------------

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=VAR_DIR / "static")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
MEDIA_URL = "media/"
MEDIA_ROOT = env.path("MEDIA_ROOT", default=VAR_DIR / "media")
# Uploaded creatives are served by Django itself only when no CDN fronts them (the demo).
SERVE_MEDIA = env.bool("SERVE_MEDIA", default=DEBUG)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "adsplatform.api.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_THROTTLE_CLASSES": ["adsplatform.api.throttling.TokenRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"token": env.str("API_RATE_LIMIT", default="1200/min")},
    "EXCEPTION_HANDLER": "adsplatform.api.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "adsplatform API",
    "DESCRIPTION": (
        "Campaign management and reporting. Authenticate with `Authorization: Bearer <token>` "
        "(tokens are made in the dashboard). Errors share one shape: "
        '`{"error": {"status", "code", "message", "fields": [{"path", "message"}]}}`. '
        "POST honours `Idempotency-Key`; PATCH honours `If-Match` with the ETag of a GET."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The docs page's assets are served from our static files, not a third-party CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

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
}
# Ingestion holds a lock this long, renewed while it works, so a killed worker's lock
# expires within seconds (reporting/lease.py); and reads the stream this many entries a batch.
INGEST_LOCK_SECONDS = env.float("INGEST_LOCK_SECONDS", default=5.0)
INGEST_BATCH_SIZE = env.int("INGEST_BATCH_SIZE", default=5000)
# Partitions of the event stream (`events`, `events:1`, ...): serving appends a request's
# events to one chosen by its decision id; each is rolled up by its own consumer, lease and
# watermark, so ingestion runs on as many Celery workers as there are partitions. 1 on the
# embedded default. Changing it needs nothing drained: ingestion, telemetry, retention and
# data-subject requests read every partition ever configured (`reporting.stream.partitions`).
EVENT_STREAM_PARTITIONS = env.int("EVENT_STREAM_PARTITIONS", default=1)
if not 1 <= EVENT_STREAM_PARTITIONS <= 256:
    raise ImproperlyConfigured(
        f"EVENT_STREAM_PARTITIONS is {EVENT_STREAM_PARTITIONS}; expected 1 to 256"
    )
# The event stream is never trimmed by length (that would drop entries not rolled up yet);
# past this many entries it is reported instead: a log line per crossing, a gauge in Redis,
# the admin's ingestion status (reporting/backlog.py). 5,000,000 entries is about 17 minutes
# of stalled ingestion at 2,500 requests/s.
STREAM_BACKLOG_LIMIT = env.int("STREAM_BACKLOG_LIMIT", default=5_000_000)

# Operations (reporting.metrics): /metrics answers loopback, or this bearer token when set.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Per-campaign budget series on /metrics: live campaigns only, at most this many (by id), so
# a scrape stays a few hundred kilobytes; adsplatform_campaigns_live says how many there are.
METRICS_CAMPAIGN_LIMIT = env.int("METRICS_CAMPAIGN_LIMIT", default=500)
# /readyz: the checks that make it answer 503 (of database, redis, snapshot, beat, ingest),
# how long without a pacing run means beat is down, and the unrolled entries that mean
# ingestion has fallen behind.
READYZ_REQUIRED = env.list("READYZ_REQUIRED", default=["database", "redis", "snapshot"])
READYZ_BEAT_STALE_SECONDS = env.float("READYZ_BEAT_STALE_SECONDS", default=60.0)
READYZ_INGEST_LAG_LIMIT = env.int("READYZ_INGEST_LAG_LIMIT", default=100_000)
# Billed (decision id, kind) pairs are kept this long past SERVING_TOKEN_TTL_SECONDS, for
# clocks that disagree, then pruned by the retention job (reporting/billing.py).
BILLED_DECISION_MARGIN_SECONDS = env.int("BILLED_DECISION_MARGIN_SECONDS", default=3600)

# Serving: the public base of tracking URLs and the key that signs them.
SERVING_PUBLIC_URL = env.str("SERVING_PUBLIC_URL", default="http://127.0.0.1:8000").rstrip("/")
SERVING_SIGNING_KEY = env.str(
    "SERVING_SIGNING_KEY", default=_DEMO_SECRETS.get("SERVING_SIGNING_KEY")
)
# Impression and click tokens older than this are not billed.
SERVING_TOKEN_TTL_SECONDS = env.int("SERVING_TOKEN_TTL_SECONDS", default=3600)
# Asset URLs in rendered creatives are built on this base (a CDN in production).
CDN_BASE_URL = env.str("CDN_BASE_URL", default=f"{SERVING_PUBLIC_URL}/{MEDIA_URL}").rstrip("/")
# Our vendor id in the IAB Global Vendor List: GDPR consent is checked against it.
GVL_VENDOR_ID = env.int("GVL_VENDOR_ID", default=9999)
# The Global Vendor List judging each buyer (docs/privacy.md): a vendor-list.json on disk,
# used until a version has been loaded from GVL_URL by the refresh-gvl beat job (the IAB
# publishes a new version weekly). Neither set: buyers are judged by the TC string alone.
GVL_PATH = env.str("GVL_PATH", default="")
GVL_URL = env.str("GVL_URL", default="")
CELERY_BEAT_SCHEDULE["refresh-gvl"] = {
    "task": "compliance.tasks.refresh_gvl_task",
    "schedule": schedule(env.float("GVL_REFRESH_SECONDS", default=6 * 3600.0)),
}
# --- Serving engine (issue #4; README "Serving") --------------------------------------------
# Prices, floors and bids are compared in this currency; others convert through FX_RATES
# ("EUR=1.08,GBP=1.27": one EUR is worth 1.08 of SERVING_CURRENCY). A malformed value stops
# the server at start, naming the bad item. With FX_SOURCE set (a file path or http(s) URL of
# an ECB eurofxref XML), the reference rates are loaded every FX_REFRESH_SECONDS and used
# while younger than FX_MAX_AGE_SECONDS; FX_RATES is the fallback when they are stale.
SERVING_CURRENCY = env.str("SERVING_CURRENCY", default="USD").upper()
try:
    FX_RATES = parse_fx_setting(env.str("FX_RATES", default="EUR=1.08,GBP=1.27,JPY=0.0067"))
except FxError as error:
    raise ImproperlyConfigured(str(error)) from None
FX_SOURCE = env.str("FX_SOURCE", default="")
FX_REFRESH_SECONDS = env.float("FX_REFRESH_SECONDS", default=3600.0)
# The ECB publishes on working days: Friday's rates are still the newest on a Monday morning,
# and a long holiday weekend can span five days.
FX_MAX_AGE_SECONDS = env.int("FX_MAX_AGE_SECONDS", default=5 * 86400)
CELERY_BEAT_SCHEDULE["refresh-fx-rates"] = {
    "task": "campaigns.tasks.refresh_fx_rates_task",
    "schedule": schedule(FX_REFRESH_SECONDS),
}
# Requests per second per placement key, across all serving processes (429 above it).
SERVING_RATE_LIMIT = env.int("SERVING_RATE_LIMIT", default=20000)
# Waiting for external buyers: at most this long, and always below an inbound tmax.
SERVING_BUYER_TIMEOUT_MS = env.int("SERVING_BUYER_TIMEOUT_MS", default=120)
# Networks (CIDRs) serving may fetch from although they are not public: buyers' endpoints,
# notice URLs and nurl markup go to public addresses only otherwise (serving/netguard.py).
# Empty in production; tests allow 127.0.0.0/8 for their loopback buyers.
SERVING_FETCH_ALLOWED_NETWORKS = env.list("SERVING_FETCH_ALLOWED_NETWORKS", default=[])
# A request body that has not fully arrived after this long is a 408 (the connection closes).
SERVING_BODY_TIMEOUT_SECONDS = env.float("SERVING_BODY_TIMEOUT_SECONDS", default=5.0)
# Every wait of serving on Redis ends after this long (connect, a batch's replies, the
# once-a-second reads); a hung Redis then counts as down (README "Redis outage").
SERVING_REDIS_TIMEOUT_SECONDS = env.float("SERVING_REDIS_TIMEOUT_SECONDS", default=1.0)
# The predicted click-through rate of a CPC line item until the CTR model exists.
SERVING_DEFAULT_CTR = env.float("SERVING_DEFAULT_CTR", default=0.002)
# Geo: a MaxMind GeoIP2/GeoLite2 Country or City database, and/or a CDN's country header
# (e.g. "cloudfront-viewer-country", "cf-ipcountry"); trust a header only behind that CDN.
GEOIP_PATH = env.str("GEOIP_PATH", default="") or None
SERVING_COUNTRY_HEADER = env.str("SERVING_COUNTRY_HEADER", default="") or None
SERVING_REGION_HEADER = env.str("SERVING_REGION_HEADER", default="") or None

# --- Invalid traffic (issue 18; docs/ivt.md) ---------------------------------------------------
# Off, no impression or click is judged and no decision is refused for its address (crawlers
# still get no ad). Scripted test traffic is all invalid by design: the test suite turns it
# off except where it tests it.
IVT_ENABLED = env.bool("IVT_ENABLED", default=True)
# Data-center and hosting prefixes serving loads at start; the refresh job publishes newer
# ones (from this file and IVT_DATACENTER_URLS) through Redis, keeping the last good copy.
IVT_DATACENTER_FILE = env.str(
    "IVT_DATACENTER_FILE", default=str(BASE_DIR / "serving/ivt/data/datacenter-ranges.txt")
)
IVT_DATACENTER_URLS = env.list("IVT_DATACENTER_URLS", default=[])
CELERY_BEAT_SCHEDULE["refresh-datacenter-ranges"] = {
    "task": "serving.tasks.refresh_datacenter_ranges_task",
    "schedule": schedule(env.float("IVT_DATACENTER_REFRESH_SECONDS", default=6 * 3600.0)),
}
# The header our own proxy or load balancer sets to the client's address (e.g. "x-real-ip");
# empty: the connection's peer. Never a header a client could set unchecked.
SERVING_CLIENT_IP_HEADER = env.str("SERVING_CLIENT_IP_HEADER", default="")
# The thresholds' defaults (serving.ivt.judge.IvtRules; admin edits override them).
IVT_RULES = {
    "enabled": IVT_ENABLED,
    # "no_ad" or "house": what a decision from a data-center address gets.
    "datacenter_action": env.str("IVT_DATACENTER_ACTION", default="no_ad"),
    "min_click_ms": env.int("IVT_MIN_CLICK_MS", default=1000),
    "id_imps_per_minute": env.int("IVT_ID_IMPS_PER_MINUTE", default=30),
    "id_imps_per_hour": env.int("IVT_ID_IMPS_PER_HOUR", default=600),
    "id_clicks_per_minute": env.int("IVT_ID_CLICKS_PER_MINUTE", default=5),
    "id_clicks_per_hour": env.int("IVT_ID_CLICKS_PER_HOUR", default=30),
    "ip_imps_per_minute": env.int("IVT_IP_IMPS_PER_MINUTE", default=600),
    "ip_imps_per_hour": env.int("IVT_IP_IMPS_PER_HOUR", default=12000),
    "ip_clicks_per_minute": env.int("IVT_IP_CLICKS_PER_MINUTE", default=60),
    "ip_clicks_per_hour": env.int("IVT_IP_CLICKS_PER_HOUR", default=600),
}
# A placement whose hourly CTR is this many times its trailing norm (and has this many
# clicks at least) is flagged for review.
IVT_CTR_FLAG_RATIO = env.float("IVT_CTR_FLAG_RATIO", default=5.0)
IVT_CTR_FLAG_MIN_CLICKS = env.int("IVT_CTR_FLAG_MIN_CLICKS", default=20)
CELERY_BEAT_SCHEDULE["review-ctr"] = {
    "task": "reporting.ivt.tasks.review_ctr_task",
    "schedule": schedule(3600.0),
}

# Raw events stay in the Redis stream this long after they are rolled up.
RAW_EVENT_RETENTION_SECONDS = env.int("RAW_EVENT_RETENTION_SECONDS", default=24 * 3600)

# --- Privacy (issue #6; docs/privacy.md explains each setting) -------------------------------
# The secret behind pseudonymous user ids: its own secret, not derived from SECRET_KEY, so
# rotating the session key never changes pseudonyms. Changing it makes everything stored
# before unlinkable to anyone, and unreachable by data-subject requests.
PSEUDONYM_SECRET = env.str("PSEUDONYM_SECRET", default=_DEMO_SECRETS.get("PSEUDONYM_SECRET"))
# Where a request without regs.gdpr is treated as gdpr = 1 (ISO 3166-1 alpha-2 codes, comma
# separated): by default the EU, the rest of the EEA, the UK and Switzerland.
try:
    GDPR_COUNTRIES = sorted(
        parse_country_list(
            env.list("GDPR_COUNTRIES", default=sorted(DEFAULT_GDPR_COUNTRIES)), "GDPR_COUNTRIES"
        )
    )
except ValueError as error:
    raise ImproperlyConfigured(str(error)) from None
# A buyer's user id learnt by user sync (/v1/sync) is kept this long after its last sync. It
# is keyed by the pseudonym of its period, so after a key rotation it is no longer found.
SYNC_TTL_SECONDS = env.int("SYNC_TTL_SECONDS", default=30 * 86400)
# The pseudonym key changes every this many days (counted from the Unix epoch, in UTC).
PSEUDONYM_ROTATION_DAYS = env.int("PSEUDONYM_ROTATION_DAYS", default=30)
# Data-subject request jobs read the raw event stream this many entries at a time.
DSAR_SCAN_CHUNK = env.int("DSAR_SCAN_CHUNK", default=5000)
# An access request's export holds personal data; it is deleted this many days after it is made.
DSAR_EXPORT_RETENTION_DAYS = env.int("DSAR_EXPORT_RETENTION_DAYS", default=30)
# Raw events past RAW_EVENT_RETENTION_SECONDS (never before they are rolled up), frequency-cap
# hashes left without an expiry, and old access exports are purged this often.
CELERY_BEAT_SCHEDULE["purge-personal-data"] = {
    "task": "compliance.tasks.purge_personal_data_task",
    "schedule": schedule(env.float("PRIVACY_PURGE_EVERY_SECONDS", default=600.0)),
}
# --- End of Privacy ----------------------------------------------------------------------------

# --- Creatives (issue #5; docs/creatives.md) -------------------------------------------------
# Creative files are stored under content-hashed names, so every object may be cached for a
# year; the CDN (and the demo's media view) sends this header. Rendered asset URLs are built
# on CDN_BASE_URL, which maps to the root of this storage.
CREATIVES_CACHE_CONTROL = "public, max-age=31536000, immutable"
# An S3-compatible bucket when set (credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY
# or the instance role); the local MEDIA_ROOT otherwise.
CREATIVES_S3_BUCKET = env.str("CREATIVES_S3_BUCKET", default="")
STORAGES["creatives"] = (
    {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {  # type: ignore[dict-item]  # STORAGES is typed from its str-only literal
            "bucket_name": CREATIVES_S3_BUCKET,
            "endpoint_url": env.str("CREATIVES_S3_ENDPOINT_URL", default="") or None,
            "region_name": env.str("CREATIVES_S3_REGION", default="") or None,
            "location": env.str("CREATIVES_S3_PREFIX", default=""),
            "querystring_auth": False,
            "file_overwrite": True,  # a name is a content hash: same name, same bytes
            "object_parameters": {"CacheControl": CREATIVES_CACHE_CONTROL},
        },
    }
    if CREATIVES_S3_BUCKET
    else {"BACKEND": "django.core.files.storage.FileSystemStorage"}
)
# Weight limits in bytes (IAB LEAN: 150 KB for a display ad's initial load).
CREATIVE_IMAGE_MAX_BYTES = env.int("CREATIVE_IMAGE_MAX_BYTES", default=150 * 1024)
CREATIVE_NATIVE_IMAGE_MAX_BYTES = env.int("CREATIVE_NATIVE_IMAGE_MAX_BYTES", default=500 * 1024)
CREATIVE_HTML5_MAX_BYTES = env.int("CREATIVE_HTML5_MAX_BYTES", default=1024 * 1024)  # the zip
CREATIVE_HTML5_MAX_UNPACKED_BYTES = env.int(
    "CREATIVE_HTML5_MAX_UNPACKED_BYTES", default=5 * 1024 * 1024
)
CREATIVE_HTML5_MAX_FILES = env.int("CREATIVE_HTML5_MAX_FILES", default=200)
CREATIVE_VIDEO_MAX_BYTES = env.int("CREATIVE_VIDEO_MAX_BYTES", default=200 * 1024 * 1024)
CREATIVE_AUDIO_MAX_BYTES = env.int("CREATIVE_AUDIO_MAX_BYTES", default=20 * 1024 * 1024)
CREATIVE_MAX_DURATION_SECONDS = env.int("CREATIVE_MAX_DURATION_SECONDS", default=180)
# The official VAST 4.2 XSD our VAST output is validated against (not in this repository);
# empty: ../shared/reference/vast_4.2.xsd when it exists.
VAST_XSD = env.str("VAST_XSD", default="")
# The API schema names each "kind" enum: creatives and data-subject requests both have one,
# and the schema must build without warnings.
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"] = {
    **SPECTACULAR_SETTINGS.get("ENUM_NAME_OVERRIDES", {}),  # type: ignore[dict-item]
    "CreativeKindEnum": "creatives.models.CreativeKind",
    "DataSubjectRequestKindEnum": "compliance.models.RequestKind",
}
# --- End of Creatives --------------------------------------------------------------------------

# --- Pacing (issue #7; docs/pacing.md) --------------------------------------------------------
# The controller's tick: each live campaign's pass-through rate, dynamic bid multipliers and
# the day's caps. A tick that waited longer than its period in the queue is dropped.
PACING_EVERY_SECONDS = env.float("PACING_EVERY_SECONDS", default=2.0)
# Each beat duty that must not run twice at once (the pacing tick, the reconciliation, the
# retention purge, ingestion) holds a lease this short, renewed while it works
# (reporting/lease.py): two beat schedulers may run, and a holder that dies frees it within
# seconds instead of stopping pacing until a long lock times out.
PACING_LOCK_SECONDS = env.float("PACING_LOCK_SECONDS", default=5.0)
CELERY_BEAT_SCHEDULE["run-pacing"] = {
    "task": "campaigns.tasks.run_pacing_task",
    "schedule": schedule(PACING_EVERY_SECONDS),
    "options": {"expires": PACING_EVERY_SECONDS},
}
# Redis spend counters are brought up to the rollups (the truth) this often: a Redis that
# loses its data loses at most this long of spend (the controller also repairs a day it
# finds unreconciled at its next tick).
CELERY_BEAT_SCHEDULE["reconcile-spend"] = {
    "task": "campaigns.tasks.reconcile_spend_task",
    "schedule": schedule(env.float("PACING_RECONCILE_EVERY_SECONDS", default=10.0)),
}
# --- End of Pacing -----------------------------------------------------------------------------

# --- Live dashboard (issue 15; reporting/live) --------------------------------------------
# The channels layer (websocket groups) on the project's Redis, under our key prefix.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": f"{REDIS_KEY_PREFIX}asgi", "expiry": 10},
    }
}
# How often the figures of watched pages are pushed (one Celery task per tick for all of
# them); a tick older than its period in the queue is dropped, the next one is fresher.
LIVE_EVERY_SECONDS = env.float("LIVE_EVERY_SECONDS", default=2.0)
CELERY_BEAT_SCHEDULE["publish-live"] = {
    "task": "reporting.tasks.publish_live_task",
    "schedule": schedule(LIVE_EVERY_SECONDS),
    "options": {"expires": LIVE_EVERY_SECONDS},
}
# --- End of Live dashboard ---------------------------------------------------------------------

# --- Telemetry (issue #16; docs/telemetry.md) ------------------------------------------------
# Log-level Parquet files of decisions and outcomes, written from the event stream by a beat
# job with its own watermark; raw events are not trimmed before it has written them.
TELEMETRY_ENABLED = env.bool("TELEMETRY_ENABLED", default=True)
TELEMETRY_BATCH_SIZE = env.int("TELEMETRY_BATCH_SIZE", default=20_000)
# Candidates serving records per filled slot (the winner first, then the auction's losers).
TELEMETRY_CANDIDATES = env.int("TELEMETRY_CANDIDATES", default=8)
# Files of hours older than this are deleted by the retention job (purge-personal-data).
TELEMETRY_RETENTION_DAYS = env.int("TELEMETRY_RETENTION_DAYS", default=90)
# An S3-compatible bucket when set (endpoint and region as the creatives' settings); the
# local var/telemetry/ otherwise.
TELEMETRY_S3_BUCKET = env.str("TELEMETRY_S3_BUCKET", default="")
STORAGES["telemetry"] = (
    {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {  # type: ignore[dict-item]  # STORAGES is typed from its str-only literal
            "bucket_name": TELEMETRY_S3_BUCKET,
            "endpoint_url": env.str("CREATIVES_S3_ENDPOINT_URL", default="") or None,
            "region_name": env.str("CREATIVES_S3_REGION", default="") or None,
            "location": env.str("TELEMETRY_S3_PREFIX", default="telemetry"),
            "querystring_auth": False,
            "file_overwrite": True,  # a batch written again replaces its file
        },
    }
    if TELEMETRY_S3_BUCKET
    else {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(env.path("TELEMETRY_ROOT", default=VAR_DIR / "telemetry"))},  # type: ignore[dict-item]
    }
)
CELERY_BEAT_SCHEDULE["write-telemetry"] = {
    "task": "reporting.tasks.write_telemetry_task",
    "schedule": schedule(env.float("TELEMETRY_EVERY_SECONDS", default=60.0)),
}
# --- End of Telemetry --------------------------------------------------------------------------

# --- Conversions (issue #16; docs/conversions.md) --------------------------------------------
# Attribution of the pixel's and postbacks' conversions, from the event stream with its own
# watermark, every CONVERSIONS_EVERY_SECONDS; conversion rows are kept this many days.
CELERY_BEAT_SCHEDULE["attribute-conversions"] = {
    "task": "reporting.tasks.attribute_conversions_task",
    "schedule": schedule(env.float("CONVERSIONS_EVERY_SECONDS", default=10.0)),
}
CONVERSION_RETENTION_DAYS = env.int("CONVERSION_RETENTION_DAYS", default=400)
# --- End of Conversions ------------------------------------------------------------------------
# Measurement rollups (reporting/measurement/rollup.py): each UTC day is summed into daily
# rows DEMAND_DAY_CLOSE_HOURS after it ends (a later event is added to both), and its hours
# are deleted after DEMAND_HOURLY_DAYS; the job runs every DEMAND_ROLLUP_SECONDS. Reports read
# whole days from the daily rows and the rest from the hours.
DEMAND_HOURLY_DAYS = env.int("DEMAND_HOURLY_DAYS", default=35)
DEMAND_DAY_CLOSE_HOURS = env.int("DEMAND_DAY_CLOSE_HOURS", default=3)
if DEMAND_HOURLY_DAYS < 1 or DEMAND_DAY_CLOSE_HOURS < 0:
    raise ImproperlyConfigured(
        "DEMAND_HOURLY_DAYS must be 1 or more, DEMAND_DAY_CLOSE_HOURS 0 or more"
    )
CELERY_BEAT_SCHEDULE["roll-up-demand-days"] = {
    "task": "reporting.tasks.roll_up_days_task",
    "schedule": schedule(env.float("DEMAND_ROLLUP_SECONDS", default=3600.0)),
}
# --- Learning (issue #16; docs/learning.md) --------------------------------------------------
# A daily job trains a pCTR model on the telemetry files' last LEARNING_TRAIN_DAYS before a
# held-out LEARNING_HOLDOUT_DAYS, evaluates it on the held-out days and promotes it when it
# beats the baselines and the live model there (by LEARNING_PROMOTE_MIN_GAIN, relative).
LEARNING_TRAIN_DAYS = env.int("LEARNING_TRAIN_DAYS", default=7)
LEARNING_HOLDOUT_DAYS = env.int("LEARNING_HOLDOUT_DAYS", default=1)
LEARNING_MIN_ROWS = env.int("LEARNING_MIN_ROWS", default=1000)
LEARNING_MIN_HOLDOUT_ROWS = env.int("LEARNING_MIN_HOLDOUT_ROWS", default=200)
LEARNING_AUTO_PROMOTE = env.bool("LEARNING_AUTO_PROMOTE", default=True)
LEARNING_PROMOTE_MIN_GAIN = env.float("LEARNING_PROMOTE_MIN_GAIN", default=0.0)
LEARNING_HASH_BITS = env.int("LEARNING_HASH_BITS", default=18)
LEARNING_C = env.float("LEARNING_C", default=1.0)
# Impressions' worth of the window's CTR added to each line item's and creative's counts.
LEARNING_PRIOR_IMPRESSIONS = env.float("LEARNING_PRIOR_IMPRESSIONS", default=100.0)
LEARNING_COMPARE_LIGHTGBM = env.bool("LEARNING_COMPARE_LIGHTGBM", default=True)
LEARNING_LIGHTGBM_MIN_GAIN = env.float("LEARNING_LIGHTGBM_MIN_GAIN", default=0.02)
if not 8 <= LEARNING_HASH_BITS <= 24:
    raise ImproperlyConfigured(f"LEARNING_HASH_BITS must be 8 to 24, not {LEARNING_HASH_BITS}")
CELERY_BEAT_SCHEDULE["train-ctr-model"] = {
    "task": "reporting.tasks.train_ctr_model_task",
    "schedule": schedule(timedelta(hours=env.float("LEARNING_EVERY_HOURS", default=24.0))),
}
# --- End of Learning ---------------------------------------------------------------------------

# LOG_FORMAT: "text" (lines for a terminal) or "json" (one JSON object per line, structlog:
# adsplatform.logs). The Celery worker and beat log JSON too when LOG_FORMAT=json is in their
# environment (adsplatform.celery); under text they keep Celery's own format.
LOG_FORMAT = env.str("LOG_FORMAT", default="text")
if LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be text or json, not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": log_formatters(),
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
# The serving access log (logger serving.access, INFO): this share of requests, at random.
SERVING_ACCESS_LOG_SAMPLE = env.float("SERVING_ACCESS_LOG_SAMPLE", default=0.01)

# Member invitations. The demo prints mail to the terminal; set MAIL_BACKEND (an SMTP backend
# takes its OPTIONS here) to send it.
MAILERS = {
    "default": {
        "BACKEND": env.str(
            "MAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend"
        ),
    }
}
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="adsplatform <noreply@localhost>")
