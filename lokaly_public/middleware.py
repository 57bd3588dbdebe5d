"""Per-IP request rate limit for the public API, counted in Redis.

django-ratelimit's fixed windows and keys (``_get_window``, ``_make_cache_key``: a count
survives a deploy of this code mid-window), counted by one Lua script: one Redis command
per request where ``get_usage`` sent three (``SET NX``, then Django's ``incr``, an
``EXISTS`` and an ``INCR``).

The same script answers the session check of a request with a bearer token (its
session's revocation marker and the markers' sentinel, ``accounts.session_store``): the
answer is stashed on the request for ``RealmJWTAuthentication``, so a request costs one
Redis round trip for both. An IPv6 client is counted per /64 network (one host usually
holds a whole /64).
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.http import HttpRequest, HttpResponse
from django_ratelimit import ALL
from django_ratelimit.core import EXPIRATION_FUDGE, _get_window, _make_cache_key, _split_rate

from lokaly_core.accounts import session_store
from lokaly_core.accounts.tokens import PUBLIC, bearer_token, peek_sid
from lokaly_core.web.errors import error_response

logger = logging.getLogger("lokaly.ratelimit")


def client_ip(request: HttpRequest) -> str:
    """The caller's IP: ``X-Forwarded-For`` is believed only from a trusted proxy."""
    return client_ip_of(
        request.META.get("REMOTE_ADDR", ""), request.META.get("HTTP_X_FORWARDED_FOR", "")
    )


def client_ip_of(peer: str, forwarded: str) -> str:
    """``client_ip`` from the peer's address and the ``X-Forwarded-For`` value (sockets:
    ``lokaly_public.ws_guard``)."""
    peer = peer or "unknown"
    trusted = settings.TRUSTED_PROXIES
    if trusted and peer in trusted:
        # The right-most address not added by one of our proxies is the client.
        for candidate in reversed([p.strip() for p in forwarded.split(",") if p.strip()]):
            if candidate in trusted:
                continue
            try:
                return str(ipaddress.ip_address(candidate))
            except ValueError:
                break
    return peer


def limit_key(ip: str) -> str:
    """What the IP limit counts: the address, or for IPv6 its /64 network."""
    if ":" not in ip:  # IPv4 (or "unknown"): as it is
        return ip
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


GROUP = "public-api"
# The window's count, created with the window's expiry (django-ratelimit's ``cache.add``);
# with two more keys (a session's revocation marker and the sentinel), their existence too.
_COUNT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
if #KEYS == 1 then return count end
return {count, redis.call('EXISTS', KEYS[2]), redis.call('EXISTS', KEYS[3])}
"""
_scripts: dict[int, Any] = {}


def count_request(request: HttpRequest) -> dict[str, Any] | None:
    """Count the request in its client IP's window: ``get_usage``'s answer
    (``count``, ``limit``, ``should_limit``, ``time_left``), or None when disabled.

    With a bearer token carrying a session id, the same round trip fetches the session's
    revocation state, stashed on the request (``session_store.REQUEST_ATTR``)."""
    return count_ip(client_ip(request), request=request)


@dataclass(frozen=True)
class IpWindow:
    """Where and how a client IP's requests are counted (django-ratelimit's window)."""

    alias: str  # the cache's
    cache: Any
    key: str
    limit: int
    expiry_s: int  # set on the window's key when its count is created
    window: int  # when the window ends (epoch seconds)

    def usage(self, count: int) -> dict[str, Any]:
        """``get_usage``'s answer for this window at ``count``."""
        return {
            "count": count,
            "limit": self.limit,
            "should_limit": count > self.limit,
            "time_left": self.window - int(time.time()),
        }


def ip_window(value: str) -> IpWindow | None:
    """The window client IP ``value`` counts in now (an IPv6 address: its /64 network), or
    None when rate limiting is off."""
    if not getattr(settings, "RATELIMIT_ENABLE", True):
        return None
    value = limit_key(value)
    rate = settings.PUBLIC_RATE_LIMIT
    limit, period = _split_rate(rate)
    window = _get_window(value, period)
    alias = getattr(settings, "RATELIMIT_USE_CACHE", "default")
    cache = caches[alias]
    key = cache.make_and_validate_key(_make_cache_key(GROUP, window, rate, value, ALL))
    return IpWindow(alias, cache, key, limit, period + EXPIRATION_FUDGE, window)


def count_ip(value: str, *, request: HttpRequest | None = None) -> dict[str, Any] | None:
    """``count_request`` for the client IP ``value`` (socket handshakes that do not count
    with their slot, ``ws_guard``, count here too)."""
    at = ip_window(value)
    if at is None:
        return None
    # The session check rides along when both live on the same Redis (the default cache).
    sid = None
    if request is not None and at.alias == "default":
        sid = _request_sid(request)
    keys = [at.key] if sid is None else [at.key, *session_store.check_keys(sid, at.cache)]
    answer = _script(at.cache)(keys=keys, args=[at.expiry_s])
    if sid is None:
        return at.usage(int(answer))
    setattr(request, session_store.REQUEST_ATTR, (sid, int(answer[1]), int(answer[2])))
    return at.usage(int(answer[0]))


def _request_sid(request: HttpRequest) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION")
    if not header:
        return None
    raw = bearer_token(header)
    return None if raw is None else peek_sid(PUBLIC, raw)


def _script(cache: Any) -> Any:
    # The cache's own client (its pool and timeouts); Django names it a private member.
    client = cache._cache.get_client(write=True)
    script = _scripts.get(id(client))
    if script is None:
        script = _scripts[id(client)] = client.register_script(_COUNT_SCRIPT)
    return script


class RateLimitMiddleware:
    """``PUBLIC_RATE_LIMIT`` (default 100/m) requests per IP on ``/api/``; over it, 429."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/api/"):
            try:
                usage = count_request(request)
            except Exception:  # Redis down: serve rather than refuse everyone
                logger.warning("rate limit unavailable; request let through", exc_info=True)
                usage = None
            if usage and usage["should_limit"]:
                response = error_response(
                    429, "rate_limited", "Too many requests from this address; retry later.",
                    {"limit": usage["limit"], "retry_after": usage["time_left"]},
                )
                response["Retry-After"] = str(max(1, usage["time_left"]))
                return response
        return self.get_response(request)
