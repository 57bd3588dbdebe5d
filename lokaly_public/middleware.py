"""Per-IP request rate limit for the public API, counted in Redis (django-ratelimit)."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django_ratelimit.core import get_usage

from lokaly_core.web.errors import error_response

logger = logging.getLogger("lokaly.ratelimit")


def client_ip(request: HttpRequest) -> str:
    """The caller's IP: ``X-Forwarded-For`` is believed only from a trusted proxy."""
    peer = request.META.get("REMOTE_ADDR", "") or "unknown"
    trusted = settings.TRUSTED_PROXIES
    if trusted and peer in trusted:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        # The right-most address not added by one of our proxies is the client.
        for candidate in reversed([p.strip() for p in forwarded.split(",") if p.strip()]):
            if candidate in trusted:
                continue
            try:
                return str(ipaddress.ip_address(candidate))
            except ValueError:
                break
    return peer


def _key(group: str, request: HttpRequest) -> str:
    return client_ip(request)


class RateLimitMiddleware:
    """``PUBLIC_RATE_LIMIT`` (default 100/m) requests per IP on ``/api/``; over it, 429."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/api/"):
            try:
                usage = get_usage(
                    request, group="public-api", key=_key, rate=settings.PUBLIC_RATE_LIMIT,
                    increment=True,
                )
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
