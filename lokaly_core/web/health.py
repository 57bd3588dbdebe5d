"""``/health`` (process alive, touches nothing) and ``/health/ready`` (database and Redis)."""

from __future__ import annotations

import logging

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from lokaly_core.redis_client import get_redis

logger = logging.getLogger("lokaly.health")


@require_GET
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


@require_GET
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
