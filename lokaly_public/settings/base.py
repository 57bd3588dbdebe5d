"""Settings of the public server (customers and couriers, port 3000, HTTP and WebSockets)."""

from lokaly_core.conf.base import *  # noqa: F403
from lokaly_core.conf.base import CORE_APPS, DEBUG, REDIS_URL
from lokaly_core.conf.env import env, env_int, secret

ROOT_URLCONF = "lokaly_public.urls"
ASGI_APPLICATION = "lokaly_public.asgi.application"
WSGI_APPLICATION = "lokaly_public.wsgi.application"

# staticfiles: Swagger UI's files for the docs page (/api/docs/), served by WhiteNoise.
INSTALLED_APPS = ["django.contrib.staticfiles", *CORE_APPS, "channels"]

MIDDLEWARE = [
    "lokaly_core.web.errors.DebugErrorEnvelopeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "lokaly_public.middleware.RateLimitMiddleware",
    "django.middleware.common.CommonMiddleware",
    # X-Frame-Options: DENY on the docs page too (manage_public.py check --deploy, W002).
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
# The public API authenticates by bearer token only, never by cookie: there is no session
# for a cross-site request to ride on, so no CSRF middleware (docs/operations.md).
SILENCED_SYSTEM_CHECKS = ["security.W003"]

# Only for the OpenAPI docs page (/api/docs/); the API itself renders JSON.
TEMPLATES = [
    {"BACKEND": "django.template.backends.django.DjangoTemplates", "DIRS": [], "APP_DIRS": True},
]

PUBLIC_JWT_SECRET = secret("PUBLIC_JWT_SECRET", debug=DEBUG)
JWT_ACCESS_TTL_SECONDS = env_int("JWT_ACCESS_TTL_SECONDS", 15 * 60)
JWT_REFRESH_TTL_SECONDS = env_int("JWT_REFRESH_TTL_SECONDS", 7 * 24 * 3600)

REST_FRAMEWORK = {
    **REST_FRAMEWORK,  # noqa: F405
    "DEFAULT_AUTHENTICATION_CLASSES": ["lokaly_core.accounts.tokens.PublicJWTAuthentication"],
}

# Requests per client IP, counted in Redis so the limit holds across processes.
PUBLIC_RATE_LIMIT = env("PUBLIC_RATE_LIMIT", "100/m")
# X-Forwarded-For is believed only when the direct peer is one of TRUSTED_PROXIES (base).

# The pub/sub layer, chosen by measurement (docs/performance.md, "Sockets at scale"): it
# keeps group members in each process's memory and holds two Redis connections per
# process (one subscribed, one publishing), so a crashed process leaves nothing behind
# (its subscriptions end with its connection) and a broadcast is one PUBLISH. The core
# layer keeps members in Redis sorted sets (stale for group_expiry, a day, after a crash),
# grew its pool to 40-60 connections under a burst of 1,000 sockets and copies every
# group message into each member's key.
CHANNEL_LAYERS = {
    "default": {
        # channels_redis' pub/sub layer without a subscription per socket, its group
        # subscriptions batched (lokaly_public/channel_layer.py, docs/performance.md).
        "BACKEND": "lokaly_public.channel_layer.GroupsPubSubChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL]},
    }
}

PUBLIC_PORT = env_int("PUBLIC_PORT", 3000)
# How the HTTP side is served: "wsgi" runs Django's WSGI handler in a thread pool under
# uvicorn (lokaly_public.wsgi_bridge), "asgi" uses Django's ASGI handler. See
# docs/performance.md.
PUBLIC_HTTP_STACK = env("PUBLIC_HTTP_STACK", "wsgi")
PUBLIC_WORKERS = env_int("PUBLIC_WORKERS", 2)
if PUBLIC_HTTP_STACK == "asgi":
    # Django's ASGI handler does not reuse persistent connections across its request
    # threads: with CONN_MAX_AGE > 0 connections pile up until PostgreSQL refuses more
    # ("too many clients", measured in bench). The default WSGI thread pool has no such
    # problem.
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
# Threads per server process running the WSGI side; each holds one database connection.
PUBLIC_HTTP_THREADS = env_int("PUBLIC_HTTP_THREADS", 4)
# Async connections per server process for the order socket's admission read, made in
# the event loop (lokaly_public.db_async): opened as handshakes need them, kept for reuse.
PUBLIC_SOCKET_DB_CONNECTIONS = env_int("PUBLIC_SOCKET_DB_CONNECTIONS", 4)

SPECTACULAR_SETTINGS = {
    **SPECTACULAR_SETTINGS,  # noqa: F405
    "TITLE": "Lokaly public API",
    "DESCRIPTION": "Customers and couriers. Error shape, pagination and auth: see docs/api.md.",
    "ENUM_NAME_OVERRIDES": {
        "OrderStatusEnum": "lokaly_public.serializers.ORDER_STATUSES",
        "DeliveryStatusEnum": "lokaly_public.serializers.DELIVERY_STATUSES",
        "CurrentDeliveryStatusEnum": "lokaly_public.serializers.CURRENT_DELIVERY_STATUSES",
        "SubstitutionStatusEnum": "lokaly_public.serializers.SUBSTITUTION_STATUSES",
    },
}

# What ``manage_public.py serve`` runs (see lokaly_core/management/commands/serve.py).
SERVER = {
    "kind": "asgi",
    "app": "lokaly_public.asgi:application",
    # uvicorn's websockets-sansio protocol, closing sockets with 1001 on shutdown.
    "ws": "lokaly_public.ws_protocol:GoingAwayWebSocketProtocol",
    "port": PUBLIC_PORT,
    "workers": PUBLIC_WORKERS,
}
