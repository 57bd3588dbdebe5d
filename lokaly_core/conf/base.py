"""Settings shared by every Lokaly process; each project imports this and adds its own.

Everything comes from the environment (see .env.example). Without DATABASE_URL /
REDIS_URL the embedded development servers are started (lokaly_core.conf.embedded).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from lokaly_core.conf.env import check_distinct_secrets, env, env_bool, env_int, env_list, secret

BASE_DIR = Path(__file__).resolve().parents[2]

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = secret("DJANGO_SECRET_KEY", debug=DEBUG)
check_distinct_secrets()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")

# HTTP security (docs/operations.md, "TLS and proxies"): TLS ends at a reverse proxy in
# front of the servers. With DEBUG off the cookies are Secure and HTTPS answers carry HSTS
# (SecurityMiddleware sends it on secure requests only, so plain-HTTP health checks and
# the smoke test are unaffected).
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
# Off by default: HSTS on every subdomain of the API's host is the domain owner's call.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# Off by default: the proxy redirects http:// to https://; on here, the plain-HTTP health
# checks on the container's port would be redirected too (they are exempt below).
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_REDIRECT_EXEMPT = [r"^health/"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# "HTTP_X_FORWARDED_PROTO,https": Django believes the request was HTTPS when that header
# has that value, from anyone, so set it only when the proxy always sets (overwrites) it.
# Unset, the servers already take the scheme from X-Forwarded-Proto of TRUSTED_PROXIES
# only (uvicorn's and gunicorn's --forwarded-allow-ips, see the serve command).
_proxy_ssl_header = env_list("SECURE_PROXY_SSL_HEADER", "")
SECURE_PROXY_SSL_HEADER = (
    (_proxy_ssl_header[0], _proxy_ssl_header[1]) if len(_proxy_ssl_header) == 2 else None
)
if _proxy_ssl_header and SECURE_PROXY_SSL_HEADER is None:
    raise ImproperlyConfigured(
        "SECURE_PROXY_SSL_HEADER is '<META name>,<value>', e.g. HTTP_X_FORWARDED_PROTO,https."
    )
# Origins (scheme://host[:port]) whose unsafe requests the admin site accepts (CSRF), for
# when the proxy's public host differs from what the server sees.
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")
# Comma-separated IPs of the reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are
# believed (empty: none; the client IP is the direct peer's).
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", "")

if os.environ.get("DATABASE_URL"):
    DATABASE_URL = os.environ["DATABASE_URL"]
else:
    from lokaly_core.conf import embedded

    DATABASE_URL = embedded.database_url()
if os.environ.get("REDIS_URL"):
    REDIS_URL = os.environ["REDIS_URL"]
else:
    from lokaly_core.conf import embedded

    REDIS_URL = embedded.redis_url()

DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL,
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
        conn_health_checks=True,
        # Django's backend, checking a persistent connection's health without a round trip
        # per request (see the module).
        engine="lokaly_core.db.postgresql",
    )
}
# Server-side binding with prepared statements: a statement run DB_PREPARE_THRESHOLD
# times on a connection is prepared, and PostgreSQL plans it once per connection, not on
# every run (planning was a third of PostgreSQL's CPU per order at 32 customers:
# docs/performance.md, "Issue 10, fourth session"). Behind a transaction-pooling
# PgBouncer older than 1.21, set DB_PREPARE_THRESHOLD=0 (no prepared statements; the
# binding stays server-side).
_prepare_threshold = env_int("DB_PREPARE_THRESHOLD", 5)
DATABASES["default"]["OPTIONS"] = {
    "server_side_binding": True,
    "prepare_threshold": _prepare_threshold or None,
}
# A persistent connection gets Django's SELECT 1 health check at most once per this many
# seconds; in between, a local check (lokaly_core/db/postgresql/base.py).
DB_HEALTH_CHECK_SECONDS = env_int("DB_HEALTH_CHECK_SECONDS", 5)
# test_<database>, as Django names it: two runs on one server with two DATABASE_URL
# database names never share (or drop) each other's test database.
DATABASES["default"]["TEST"] = {
    "NAME": env("TEST_DATABASE_NAME", f"test_{DATABASES['default']['NAME']}")
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {
    "default": {
        "BACKEND": "lokaly_core.cache.PooledRedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env("CACHE_KEY_PREFIX", "lokaly"),
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
    }
}

AUTH_USER_MODEL = "core.User"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# lokaly_core first: its management commands (createsuperuser) take precedence.
CORE_APPS = [
    "lokaly_core",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rest_framework",
    "drf_spectacular",
    # Swagger UI's files for /api/docs/ (SPECTACULAR_SETTINGS below), served from the
    # project rather than a CDN: the page works offline, at the pinned version.
    "drf_spectacular_sidecar",
]

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Static files (the admin site's, Swagger UI's) are served by WhiteNoise on both servers: in
# development straight from the apps, in production from STATIC_ROOT after `collectstatic`
# (the Dockerfile runs the admin server's, whose apps include every static file the public
# server has; both servers share STATIC_ROOT).
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

# A JSON body larger than this is refused with 400 before any view runs.
DATA_UPLOAD_MAX_MEMORY_SIZE = 256 * 1024

REST_FRAMEWORK = {
    # DRF's JSON, made by orjson (lokaly_core/web/renderers.py).
    "DEFAULT_RENDERER_CLASSES": ["lokaly_core.web.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["lokaly_core.web.parsers.JSONParser"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "lokaly_core.web.pagination.CursorPagination",
    # drf-spectacular's, naming every list operation `..._list` (docs/api.md).
    "DEFAULT_SCHEMA_CLASS": "lokaly_core.web.schema.AutoSchema",
    "EXCEPTION_HANDLER": "lokaly_core.web.errors.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DATETIME_FORMAT": "%Y-%m-%dT%H:%M:%S.%fZ",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

# Where events travel (Redis Streams) and how the worker treats them.
EVENT_STREAM = env("EVENT_STREAM", "lokaly:events")
DEAD_LETTER_STREAM = env("DEAD_LETTER_STREAM", "lokaly:events:dead")
EVENT_CONSUMER_GROUP = env("EVENT_CONSUMER_GROUP", "lokaly-worker")
EVENT_MAX_ATTEMPTS = env_int("EVENT_MAX_ATTEMPTS", 5)
EVENT_RETRY_BASE_MS = env_int("EVENT_RETRY_BASE_MS", 500)
EVENT_RETRY_MAX_MS = env_int("EVENT_RETRY_MAX_MS", 30_000)
# A pending entry idle this long belongs to a consumer presumed dead; others claim it
# (XAUTOCLAIM). It must exceed the longest a live worker holds an entry unacked: its slowest
# handler, or a whole batch of ordinary ones (acks are sent per batch), plus a GC or VM
# pause; handlers take milliseconds, so 30 s leaves a wide margin, while an order whose
# worker was killed is still confirmed within about half a minute.
EVENT_CLAIM_IDLE_MS = env_int("EVENT_CLAIM_IDLE_MS", 30_000)
# Retry policies per event type, overriding the three EVENT_* values above, as JSON:
# {"order.created": {"max_attempts": 8, "base_ms": 200, "max_ms": 5000}} (keys optional).
EVENT_RETRY_POLICIES = json.loads(env("EVENT_RETRY_POLICIES", "{}"))
# SIGTERM: the worker stops reading, finishes the events in hand and acks them; past this
# many seconds it exits non-zero, leaving the event in flight pending for another worker.
WORKER_SHUTDOWN_TIMEOUT_S = env_int("WORKER_SHUTDOWN_TIMEOUT_S", 20)
OUTBOX_SWEEP_AFTER_MS = env_int("OUTBOX_SWEEP_AFTER_MS", 2_000)
# "background": a publisher thread per process puts committed events on the stream in
# batches; "inline": the committing thread does it (one XADD and UPDATE per transaction).
OUTBOX_PUBLISH = env("OUTBOX_PUBLISH", "background")

# Redis losing its data (docs/operations.md "Reconcile"): every EVENT_RECONCILE_EVERY_S the
# worker publishes again the events published over EVENT_RECONCILE_AFTER_S ago, never
# processed nor dead-lettered, whose stream entry is gone.
EVENT_RECONCILE_EVERY_S = env_int("EVENT_RECONCILE_EVERY_S", 60)
EVENT_RECONCILE_AFTER_S = env_int("EVENT_RECONCILE_AFTER_S", 300)

# Bounded memory (docs/operations.md "Trimming and retention"), done by the worker every
# RETENTION_EVERY_S: the event stream is trimmed below what its groups still need, the
# dead-letter stream to about DEAD_LETTER_MAXLEN entries; settled outbox rows and dedup
# markers are deleted after their retention, RETENTION_BATCH rows at a time. Dedup markers
# must outlive any redelivery of their event (retries, reconcile, a dead-letter replay).
RETENTION_EVERY_S = env_int("RETENTION_EVERY_S", 60)
DEAD_LETTER_MAXLEN = env_int("DEAD_LETTER_MAXLEN", 10_000)
OUTBOX_RETENTION_HOURS = env_int("OUTBOX_RETENTION_HOURS", 168)
DEDUP_RETENTION_HOURS = env_int("DEDUP_RETENTION_HOURS", 168)
RETENTION_BATCH = env_int("RETENTION_BATCH", 1_000)

# Dispatch: an order nobody is free for is tried again after BASE * 2^(n-1) ms (capped,
# with jitter), and at once when a courier becomes available.
DISPATCH_RETRY_BASE_MS = env_int("DISPATCH_RETRY_BASE_MS", 2_000)
DISPATCH_RETRY_MAX_MS = env_int("DISPATCH_RETRY_MAX_MS", 60_000)
# Only couriers within this many metres of the store (great-circle, from their last
# location) are dispatched to; a courier who declined an order is offered it again within
# DECLINE_COOLDOWN_SECONDS only when nobody else in range is free (docs/api.md, couriers).
DISPATCH_RADIUS_M = env_int("DISPATCH_RADIUS_M", 5_000)
DECLINE_COOLDOWN_SECONDS = env_int("DECLINE_COOLDOWN_SECONDS", 600)
# A courier's location is broadcast on every update, but written to the database (where
# dispatch reads it) at most once per this many seconds per courier.
COURIER_LOCATION_WRITE_SECONDS = env_int("COURIER_LOCATION_WRITE_SECONDS", 10)

# Notifications are sent by the worker through a sender: the log, or a webhook (POST of
# the notification as JSON) when NOTIFICATION_WEBHOOK_URL is set; retried with backoff.
NOTIFICATION_WEBHOOK_URL = env("NOTIFICATION_WEBHOOK_URL", "")
# Every delivery is signed with this (X-Lokaly-Signature, docs/api.md "Webhooks"): required,
# 32+ characters, when the webhook is set and DEBUG is off; the URL must then be https://.
WEBHOOK_SIGNING_SECRET = (
    secret("WEBHOOK_SIGNING_SECRET", debug=DEBUG)
    if NOTIFICATION_WEBHOOK_URL
    else env("WEBHOOK_SIGNING_SECRET", "")
)
if NOTIFICATION_WEBHOOK_URL and not DEBUG and not NOTIFICATION_WEBHOOK_URL.startswith("https://"):
    raise ImproperlyConfigured(
        "NOTIFICATION_WEBHOOK_URL must be an https:// URL when DEBUG is off "
        f"(not {NOTIFICATION_WEBHOOK_URL.split('://')[0]}://)."
    )
NOTIFICATION_WEBHOOK_TIMEOUT_S = env_int("NOTIFICATION_WEBHOOK_TIMEOUT_S", 5)
NOTIFICATION_MAX_ATTEMPTS = env_int("NOTIFICATION_MAX_ATTEMPTS", 6)
NOTIFICATION_RETRY_BASE_MS = env_int("NOTIFICATION_RETRY_BASE_MS", 1_000)
NOTIFICATION_RETRY_MAX_MS = env_int("NOTIFICATION_RETRY_MAX_MS", 300_000)

DELIVERY_FEE_CENTS = env_int("DELIVERY_FEE_CENTS", 199)
# Orders one customer may hold neither delivered nor cancelled; 0: no limit.
MAX_OPEN_ORDERS_PER_CUSTOMER = env_int("MAX_OPEN_ORDERS_PER_CUSTOMER", 5)
IDEMPOTENCY_KEY_TTL_HOURS = env_int("IDEMPOTENCY_KEY_TTL_HOURS", 48)
# v1.1: how long a customer has to answer a substitute proposed during picking.
SUBSTITUTION_TIMEOUT_SECONDS = env_int("SUBSTITUTION_TIMEOUT_SECONDS", 300)
# How often the worker expires unanswered proposals, and how many per turn at most.
SUBSTITUTION_EXPIRY_EVERY_S = float(env("SUBSTITUTION_EXPIRY_EVERY_S", "1.0"))
SUBSTITUTION_EXPIRY_BATCH = env_int("SUBSTITUTION_EXPIRY_BATCH", 100)

LOG_LEVEL = env("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "lokaly_core.logs.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "django.request": {"level": "ERROR"},
        "uvicorn.access": {"level": "WARNING"},
    },
}

SPECTACULAR_SETTINGS = {
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Sessions, logins and sockets (contract v1.1, "Sessions and logins", "Order sockets").
# Failed logins per account, on every login path of both servers and the admin site.
# (lokaly_core/accounts/lockout.py; the ADMIN_LOGIN_* names of earlier builds are aliases.)
AUTHENTICATION_BACKENDS = ["lokaly_core.accounts.backends.LockoutModelBackend"]
LOGIN_MAX_FAILURES = env_int("LOGIN_MAX_FAILURES", env_int("ADMIN_LOGIN_MAX_FAILURES", 5))
LOGIN_FAILURE_WINDOW_SECONDS = env_int(
    "LOGIN_FAILURE_WINDOW_SECONDS", env_int("ADMIN_LOGIN_WINDOW_SECONDS", 15 * 60)
)
# Open order sockets one account may hold; a client frame larger than this closes with 1009.
WS_MAX_SOCKETS_PER_USER = env_int("WS_MAX_SOCKETS_PER_USER", 10)
WS_MAX_FRAME_BYTES = env_int("WS_MAX_FRAME_BYTES", 64 * 1024)
