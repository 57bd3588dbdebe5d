"""Shared by the DEBUG error tests of both servers (tests/{public,admin}/test_errors_debug.py):
a view with a bug, and the check that it answers the 500 envelope with its traceback logged.
Not a test module."""

from __future__ import annotations

import logging
from typing import Any, NoReturn

import pytest
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.test import APIClient
from rest_framework.views import APIView


class BrokenApi(APIView):
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    def get(self, request: Request) -> NoReturn:
        raise RuntimeError("a bug in a view")


def production_answer(settings: Any, client: Any, path: str, **extra: Any) -> tuple[int, Any]:
    """The same request's (status, body) with DEBUG off, to compare with DEBUG's."""
    settings.DEBUG = False
    response = client.get(path, **extra)
    settings.DEBUG = True
    return response.status_code, response.json()


def assert_bug_answers_500_envelope_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """GET /api/broken (``BrokenApi`` in the server's debug_urls) with DEBUG on."""
    client = APIClient(raise_request_exception=False)

    with caplog.at_level(logging.ERROR, logger="django.request"):
        response = client.get("/api/broken")

    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert b"a bug in a view" not in response.content
    (record,) = [r for r in caplog.records if r.name == "django.request"]
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == "a bug in a view"
