"""Settings of the admin server (staff, port 3001, DRF and the Django admin site).

The worker (``manage_admin.py run_worker``) runs with these settings too.
"""

from lokaly_core.conf.base import *  # noqa: F403
from lokaly_core.conf.base import CORE_APPS, DEBUG, REDIS_URL
from lokaly_core.conf.env import env_int, secret

ROOT_URLCONF = "lokaly_admin.urls"
WSGI_APPLICATION = "lokaly_admin.wsgi.application"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    *CORE_APPS,
    "lokaly_admin",
    "lokaly_worker",
]

MIDDLEWARE = [
    "lokaly_core.web.errors.DebugErrorEnvelopeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

ADMIN_JWT_SECRET = secret("ADMIN_JWT_SECRET", debug=DEBUG)
JWT_ACCESS_TTL_SECONDS = env_int("ADMIN_JWT_ACCESS_TTL_SECONDS", 15 * 60)
JWT_REFRESH_TTL_SECONDS = env_int("ADMIN_JWT_REFRESH_TTL_SECONDS", 24 * 3600)

REST_FRAMEWORK = {
    **REST_FRAMEWORK,  # noqa: F405
    "DEFAULT_AUTHENTICATION_CLASSES": ["lokaly_core.accounts.tokens.AdminJWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["lokaly_admin.rbac.RolePermission"],
}

# The worker broadcasts order changes to the public server's sockets through this layer.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL]},
    }
}

ADMIN_PORT = env_int("ADMIN_PORT", 3001)
ADMIN_WORKERS = env_int("ADMIN_WORKERS", 2)

SPECTACULAR_SETTINGS = {
    **SPECTACULAR_SETTINGS,  # noqa: F405
    "TITLE": "Lokaly admin API",
    "DESCRIPTION": "Staff back office.",
    "ENUM_NAME_OVERRIDES": {
        "OrderStatusEnum": "lokaly_admin.api.orders.ORDER_STATUSES",
        "PickingStatusEnum": "lokaly_admin.api.orders.PICKING_STATUSES",
        "CurrentDeliveryStatusEnum": "lokaly_admin.api.orders.CURRENT_DELIVERY_STATUSES",
        "SubstitutionStatusEnum": "lokaly_admin.api.orders.SUBSTITUTION_STATUSES",
    },
}

# What ``manage_admin.py serve`` runs (see lokaly_core/management/commands/serve.py).
SERVER = {
    "kind": "wsgi",
    "app": "lokaly_admin.wsgi:application",
    "port": ADMIN_PORT,
    "workers": ADMIN_WORKERS,
}
