"""The environment, the secrets and Django's own settings (apps, middleware, database, cache,
login, API, logging, mail). Read by every other settings module through `env`.
"""

import os
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils import csp
from psycopg_pool import ConnectionPool

from adsplatform import secret_keys
from adsplatform.logs import formatters as log_formatters

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DJANGO_DEBUG", default=False)
# No secret default outside DEBUG, and none derived from a constant: a deployment sets
# DJANGO_SECRET_KEY, SERVING_SIGNING_KEY and PSEUDONYM_SECRET, and the web server, worker and
# beat refuse to start without them (adsplatform.secret_keys). A DEBUG run without them uses
# random ones generated once into var/ (the demo's).
_ALL_SECRETS_SET = all(env.str(name, default="") for name in secret_keys.REQUIRED_SECRETS)
_DEMO_SECRETS = secret_keys.demo_secrets(VAR_DIR) if DEBUG and not _ALL_SECRETS_SET else {}
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=_DEMO_SECRETS.get("DJANGO_SECRET_KEY"))
# Serving's tracking URLs are signed with this key.
SERVING_SIGNING_KEY = env.str(
    "SERVING_SIGNING_KEY", default=_DEMO_SECRETS.get("SERVING_SIGNING_KEY")
)
# The secret behind pseudonymous user ids: its own secret, not derived from SECRET_KEY, so
# rotating the session key never changes pseudonyms. Changing it makes everything stored
# before unlinkable to anyone, and unreachable by data-subject requests (docs/privacy.md).
PSEUDONYM_SECRET = env.str("PSEUDONYM_SECRET", default=_DEMO_SECRETS.get("PSEUDONYM_SECRET"))
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
# (None, Django's default, otherwise.)
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https")
    if env.bool("DJANGO_TRUST_X_FORWARDED_PROTO", default=False)
    else None
)
# The serving endpoints never pass through Django, so their ad markup gets none of this; the
# dashboard, admin and API docs do. Inline event handlers in the templates (onchange,
# onsubmit confirmations) still need 'unsafe-inline' for scripts; everything else is locked
# to our own origin and the creatives' CDN.
_CDN_ORIGIN = env.str("CDN_BASE_URL", default="").split("/", 3)[:3]
_CDN = ["/".join(_CDN_ORIGIN)] if len(_CDN_ORIGIN) == 3 else []
SECURE_CSP = {
    "default-src": [csp.CSP.SELF],
    "script-src": [csp.CSP.SELF, csp.CSP.UNSAFE_INLINE],
    "style-src": [csp.CSP.SELF, csp.CSP.UNSAFE_INLINE],
    "img-src": [csp.CSP.SELF, "data:", *_CDN],
    "media-src": [csp.CSP.SELF, *_CDN],
    "frame-src": [csp.CSP.SELF, *_CDN],
    "connect-src": [csp.CSP.SELF],
    "font-src": [csp.CSP.SELF, "data:"],
    "object-src": [csp.CSP.NONE],
    "base-uri": [csp.CSP.SELF],
    "form-action": [csp.CSP.SELF],
    "frame-ancestors": [csp.CSP.SELF],
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
SILENCED_SYSTEM_CHECKS: list[str] = []
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
    # Covering indexes (the reports') are plain indexes on SQLite: said once here, not at
    # every start.
    SILENCED_SYSTEM_CHECKS.append("models.W040")
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
    # The API schema names each "kind" enum: creatives and data-subject requests both have
    # one, and the schema must build without warnings.
    "ENUM_NAME_OVERRIDES": {
        "CreativeKindEnum": "creatives.models.CreativeKind",
        "DataSubjectRequestKindEnum": "compliance.models.RequestKind",
    },
}

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
