"""One error shape for every error, whatever raised it (contract, "Conventions").

``{"error": {"code": "snake_case_code", "message": "human sentence", "details": {...}}}``
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.urls import get_resolver, get_urlconf
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import set_rollback
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError

from lokaly_core.domain.errors import DomainError, ErrorCode

logger = logging.getLogger(__name__)

DOMAIN_STATUS = {
    ErrorCode.VALIDATION_ERROR: 400,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.PERMISSION_DENIED: 403,
    ErrorCode.INVALID_TRANSITION: 409,
    ErrorCode.INSUFFICIENT_STOCK: 409,
    ErrorCode.CONFLICT: 409,
    ErrorCode.IDEMPOTENCY_CONFLICT: 409,
    ErrorCode.STORE_CLOSED: 409,
    ErrorCode.TOO_MANY_OPEN_ORDERS: 409,
    ErrorCode.INVALID_HANDOFF_CODE: 409,
    ErrorCode.HANDOFF_LOCKED: 409,
}


def error_body(code: str, message: str, details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": dict(details or {})}}


def error_response(
    status: int, code: str, message: str, details: Mapping[str, Any] | None = None
) -> JsonResponse:
    return JsonResponse(error_body(code, message, details), status=status)


class ApiError(drf.APIException):
    """An API-layer error with a contract code (e.g. ``idempotency_conflict``)."""

    def __init__(
        self, status: int, code: str, message: str, details: Mapping[str, Any] | None = None
    ):
        super().__init__(detail=message, code=code)
        self.status_code = status
        self.error_code = code
        self.message = message
        self.details = dict(details or {})


def flatten_errors(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail as ``{"items.0.quantity": ["..."]}``.

    A nested serializer's own errors (``{"items": {"non_field_errors": [...]}}``, e.g. an
    empty list or a string where an object belongs) are reported under its field, ``items``.
    """
    out: dict[str, list[str]] = {}
    if isinstance(detail, Mapping):
        for key, value in detail.items():
            if prefix and key == api_settings.NON_FIELD_ERRORS_KEY:
                name = prefix
            else:
                name = f"{prefix}.{key}" if prefix else str(key)
            for k, v in flatten_errors(value, name).items():
                out.setdefault(k, []).extend(v)
    elif isinstance(detail, list) and any(isinstance(d, Mapping | list) for d in detail):
        for index, value in enumerate(detail):
            for k, v in flatten_errors(
                value, f"{prefix}.{index}" if prefix else str(index)
            ).items():
                out.setdefault(k, []).extend(v)
    elif isinstance(detail, list):
        out[prefix or "non_field_errors"] = [str(d) for d in detail]
    else:
        out[prefix or "non_field_errors"] = [str(detail)]
    return out


def _first_message(detail: Any) -> str:
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    if isinstance(detail, Mapping) and detail:
        return _first_message(next(iter(detail.values())))
    return str(detail)


def translate(exc: Exception) -> tuple[int, dict[str, Any], dict[str, str]] | None:
    """(status, body, headers) for an exception the API knows, else None."""
    headers: dict[str, str] = {}
    if isinstance(exc, DomainError):
        return DOMAIN_STATUS[exc.code], error_body(exc.code, exc.message, exc.details), headers
    if isinstance(exc, ApiError):
        return exc.status_code, error_body(exc.error_code, exc.message, exc.details), headers
    if isinstance(exc, InvalidToken | TokenError):
        headers["WWW-Authenticate"] = 'Bearer realm="api"'
        return 401, error_body("token_invalid", "The access token is invalid or expired."), headers
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied()
    if not isinstance(exc, drf.APIException):
        return None
    status = exc.status_code
    if isinstance(exc, drf.ValidationError):
        details = flatten_errors(exc.detail)
        body = error_body("validation_error", "The request has invalid fields.", details)
    elif isinstance(exc, drf.ParseError):
        body = error_body(
            "malformed_request", f"The request body could not be parsed: {exc.detail}"
        )
    elif isinstance(exc, drf.NotAuthenticated):
        headers["WWW-Authenticate"] = 'Bearer realm="api"'
        body = error_body("not_authenticated", "Authentication credentials were not provided.")
    elif isinstance(exc, drf.AuthenticationFailed):
        headers["WWW-Authenticate"] = 'Bearer realm="api"'
        body = error_body("token_invalid", _first_message(exc.detail))
    elif isinstance(exc, drf.PermissionDenied):
        body = error_body("permission_denied", "You do not have permission to do this.")
    elif isinstance(exc, drf.NotFound):
        body = error_body("not_found", "Not found.")
    elif isinstance(exc, drf.MethodNotAllowed):
        body = error_body("method_not_allowed", _first_message(exc.detail))
    elif isinstance(exc, drf.UnsupportedMediaType):
        body = error_body("unsupported_media_type", _first_message(exc.detail))
    elif isinstance(exc, drf.NotAcceptable):
        body = error_body("not_acceptable", _first_message(exc.detail))
    elif isinstance(exc, drf.Throttled):
        # Set by Throttled.__init__, and missing from drf-stubs.
        headers["Retry-After"] = str(int(exc.wait or 1))  # type: ignore[attr-defined]
        body = error_body("rate_limited", "Too many requests; retry later.")
    else:
        body = error_body(str(exc.default_code), _first_message(exc.detail))
    return status, body, headers


def exception_handler(exc: Exception, context: Mapping[str, Any]) -> Response | None:
    translated = translate(exc)
    if translated is None:
        return None  # a real bug: Django's handler500 answers in the same shape and logs it
    status, body, headers = translated
    set_rollback()
    return Response(body, status=status, headers=headers)


# Django-level handlers (wired as handler400/403/404/500 in each urls.py), so errors raised
# outside DRF (unknown URLs, a request Django itself refuses) keep the same shape.
def bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return error_response(400, "malformed_request", "The request could not be understood.")


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return error_response(403, "permission_denied", "You do not have permission to do this.")


def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return error_response(404, "not_found", f"No resource at {request.path}.")


def server_error(request: HttpRequest) -> JsonResponse:
    return error_response(500, "internal_error", "Something went wrong on our side; it is logged.")


# The answers DEBUG changes: for these, django.core.handlers.exception.response_for_exception
# renders its technical page (HTML or plain text) instead of calling the urlconf's handler:
# 404 for an unknown URL or an Http404, 400 for a BadRequest or SuspiciousOperation (a Host
# not in ALLOWED_HOSTS), 500 for an unhandled exception. 403 and the rest do not depend on it.
DEBUG_PAGE_STATUSES = frozenset({400, 404, 500})


class DebugErrorEnvelopeMiddleware:
    """With DEBUG on, Django's technical error pages become the urlconf's handler's answer,
    the contract's error shape, as they are in production: the apps are built against
    ``make dev``. The traceback of a 500 is still logged (``django.request``) before this
    runs. Without DEBUG it changes nothing.

    First in MIDDLEWARE, to see the pages made from an exception in any layer (a bad Host
    fails in CommonMiddleware). Neither the project's views nor the admin site's answer
    400, 404 or 500 in HTML themselves (they raise and leave the answer to the handlers), so
    a non-JSON answer with one of those statuses is one of Django's debug pages.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if (
            settings.DEBUG
            and isinstance(response, HttpResponse)  # not streamed: the pages never are
            and response.status_code in DEBUG_PAGE_STATUSES
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            _replace_body(response, _handler_answer(request, response.status_code))
        return response


def _handler_answer(request: HttpRequest, status: int) -> HttpResponse:
    # As Django calls them: handler500(request), the others (request, exception=...).
    handler: Callable[..., HttpResponse] = get_resolver(get_urlconf()).resolve_error_handler(
        status
    )
    return handler(request) if status == 500 else handler(request, exception=None)


def _replace_body(response: HttpResponse, answer: HttpResponse) -> None:
    # In place rather than a new response: it keeps the headers the other middleware added
    # (SecurityMiddleware's) and Django's note that it was logged, which a new one would lose
    # (BaseHandler logs an error response it has not seen logged: twice, without traceback).
    response.content = answer.content
    response["Content-Type"] = answer["Content-Type"]
    if response.has_header("Content-Length"):  # CommonMiddleware measured the page
        response["Content-Length"] = str(len(answer.content))
