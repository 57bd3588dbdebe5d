"""Test settings: fixed secrets, a generous rate limit and open-orders limit (the tests that
check them lower them; the servers the tests start inherit them)."""

import os

os.environ.setdefault("PUBLIC_JWT_SECRET", "test-public-secret-not-for-production-0123456789")
os.environ.setdefault("ADMIN_JWT_SECRET", "test-admin-secret-not-for-production-0123456789")
os.environ.setdefault("DJANGO_SECRET_KEY", "test-django-secret-not-for-production-0123456789abcdef")
os.environ.setdefault("PUBLIC_RATE_LIMIT", "100000/m")
os.environ.setdefault("MAX_OPEN_ORDERS_PER_CUSTOMER", "100000")
os.environ.setdefault("CACHE_KEY_PREFIX", "lokaly-test")
os.environ.setdefault("EVENT_STREAM", "lokaly-test:events")
os.environ.setdefault("DEAD_LETTER_STREAM", "lokaly-test:events:dead")

from lokaly_public.settings.base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
ADMIN_JWT_SECRET = os.environ["ADMIN_JWT_SECRET"]  # only to mint admin tokens in tests
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
