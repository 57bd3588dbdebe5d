"""``/health`` (process alive, touches nothing) and ``/health/ready`` (database and Redis)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from django.db import connection
from django.http import HttpRequest, JsonResponse

from lokaly_core.redis_client import get_redis
from lokaly_core.web.errors import error_response

logger = logging.getLogger("lokaly.health")

View = Callable[[HttpRequest], JsonResponse]


def require_get(view: View) -> View:
    """Like Django's ``require_GET``, but the 405 has the contract's error shape."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest) -> JsonResponse:
        if request.method != "GET":
            response = error_response(
                405, "method_not_allowed", f'Method "{request.method}" not allowed.'
            )
            response["Allow"] = "GET"
            return response
        return view(request)

    return wrapper


@require_get
def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception:
        logger.warning("readiness: database check failed", exc_info=True)
        connection.close_if_unusable_or_obsolete()
        return "error"


def _check_redis() -> str:
    try:
        get_redis().ping()
        return "ok"
    except Exception:
        logger.warning("readiness: redis check failed", exc_info=True)
        return "error"


@require_get
def ready(request: HttpRequest) -> JsonResponse:
    checks = {"database": _check_database(), "redis": _check_redis()}
    if all(v == "ok" for v in checks.values()):
        return JsonResponse({"status": "ok", "checks": checks})
    body = {
        "status": "error",
        "checks": checks,
        "error": {
            "code": "unavailable",
            "message": "A dependency is not reachable; see the failing check.",
            "details": checks,
        },
    }
    return JsonResponse(body, status=503)
