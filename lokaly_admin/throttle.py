"""Failed-login lockout of the admin API: per account, counted in Redis (the Django cache).

After ``ADMIN_LOGIN_MAX_FAILURES`` failed logins for one email within
``ADMIN_LOGIN_WINDOW_SECONDS`` (the window opens at the first failure), every further
attempt for that email, with the right password or not, is 429 ``rate_limited`` with
``Retry-After`` until the window closes. A successful login clears the count. Unknown
emails are counted the same way, so the lockout does not reveal which accounts exist.

The admin API has no request rate limit otherwise (contract, "Admin API").
"""

from __future__ import annotations

import hashlib
import math
import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.exceptions import Throttled


# The admin's own settings: mypy's Django plugin loads the public ones (pyproject.toml).
def _max_failures() -> int:
    return int(settings.ADMIN_LOGIN_MAX_FAILURES)  # type: ignore[misc]


def _window() -> int:
    return int(settings.ADMIN_LOGIN_WINDOW_SECONDS)  # type: ignore[misc]


def _keys(email: str) -> tuple[str, str]:
    # Hashed: the cache key holds no email address, and no odd characters reach Redis.
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()
    return f"admin-login:failures:{digest}", f"admin-login:since:{digest}"


def ensure_not_locked(email: str) -> None:
    """Raise ``Throttled`` (429, ``Retry-After``) while the account is locked."""
    count_key, since_key = _keys(email)
    values = cache.get_many([count_key, since_key])
    if int(values.get(count_key) or 0) < _max_failures():
        return
    since = float(values.get(since_key) or time.time())
    wait = max(1, math.ceil(since + _window() - time.time()))
    raise Throttled(wait=wait, detail="Too many failed logins for this account; retry later.")


def record_failure(email: str) -> int:
    """Count one failed login; returns the failures in the current window."""
    count_key, since_key = _keys(email)
    window = _window()
    # ``add`` only sets a missing key: the first failure opens the window, and its expiry
    # is not pushed back by later failures (Redis INCR keeps a key's TTL).
    if cache.add(count_key, 0, timeout=window):
        cache.set(since_key, time.time(), timeout=window)
    try:
        return int(cache.incr(count_key))
    except ValueError:  # expired between add and incr: open a new window
        cache.set(count_key, 1, timeout=window)
        cache.set(since_key, time.time(), timeout=window)
        return 1


def reset(email: str) -> None:
    cache.delete_many(list(_keys(email)))
