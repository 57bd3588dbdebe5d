"""Failed logins per account, counted in Redis, for every login path of both servers.

After ``LOGIN_MAX_FAILURES`` failed logins for one email (case-insensitive) within
``LOGIN_FAILURE_WINDOW_SECONDS`` (the window opens at the first failure), every further
attempt for that email, with the right password or not, raises ``AccountLocked`` (DRF's
``Throttled``: 429 ``rate_limited`` with ``Retry-After``) until the window closes. A
successful login clears the count. Unknown emails are counted the same way, so the lockout
does not tell which accounts exist.

Counted by the authentication backend (``backends.LockoutModelBackend``), so
``POST /api/auth/token``, ``POST /api/admin/auth/token`` and the admin site's
``/admin/login/`` share one counter per account (both servers use the same Redis and cache
key prefix). The environment names ``ADMIN_LOGIN_MAX_FAILURES`` and
``ADMIN_LOGIN_WINDOW_SECONDS`` of earlier builds still set them (lokaly_core/conf/base.py).
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings
from django.core.cache import cache
from rest_framework.exceptions import Throttled

REFUSAL = "Too many failed logins for this account; retry later."

# One round trip each: the count and its remaining TTL; a failure counted with the window
# opened at the first one (INCR keeps a key's TTL).
_STATE_SCRIPT = """
local n = redis.call('GET', KEYS[1])
if not n then return {0, 0} end
return {tonumber(n), redis.call('TTL', KEYS[1])}
"""
_FAIL_SCRIPT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""
_scripts: dict[tuple[int, str], Any] = {}


class AccountLocked(Throttled):
    """Too many failed logins for this account; ``wait``: seconds until the window ends."""

    default_detail = REFUSAL


def _max_failures() -> int:
    return int(settings.LOGIN_MAX_FAILURES)


def _window() -> int:
    return int(settings.LOGIN_FAILURE_WINDOW_SECONDS)


def _key(email: str) -> str:
    # Hashed: the key holds no email address, and no odd characters reach Redis.
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()
    return str(cache.make_and_validate_key(f"login-failures:{digest}"))


def _run(script: str, keys: list[str], args: list[Any] | None = None) -> Any:
    client = cache._cache.get_client(write=True)  # type: ignore[attr-defined]
    registered = _scripts.get((id(client), script))
    if registered is None:
        registered = _scripts[(id(client), script)] = client.register_script(script)
    return registered(keys=keys, args=args or [])


def ensure_not_locked(email: str) -> None:
    """Raise ``AccountLocked`` (429, ``Retry-After``) while the account is locked."""
    count, ttl = (int(v) for v in _run(_STATE_SCRIPT, [_key(email)]))
    if count >= _max_failures():
        raise AccountLocked(wait=max(1, ttl), detail=REFUSAL)


def record_failure(email: str) -> int:
    """Count one failed login; returns the failures in the current window."""
    return int(_run(_FAIL_SCRIPT, [_key(email)], [_window()]))


def reset(email: str) -> None:
    cache._cache.get_client(write=True).delete(_key(email))  # type: ignore[attr-defined]
