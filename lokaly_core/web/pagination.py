from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiParameter, inline_serializer
from rest_framework import pagination, serializers
from rest_framework.exceptions import NotFound


class CursorPagination(pagination.CursorPagination):
    """``{"results", "next", "previous"}``, ``?page_size=`` (default 20, max 100), ``?cursor=``."""

    page_size = 20
    max_page_size = 100
    page_size_query_param = "page_size"
    ordering = ("-created_at", "-id")

    def decode_cursor(self, request: Any) -> pagination.Cursor | None:
        cursor = super().decode_cursor(request)
        # A forged position with a NUL byte would reach PostgreSQL and fail there (a 500).
        # (drf-stubs types the position int; decode_cursor gives the cursor's string.)
        if cursor is not None and cursor.position is not None and "\x00" in cursor.position:  # type: ignore[operator]
            raise NotFound(self.invalid_cursor_message)
        return cursor

    def paginate_queryset(self, queryset: Any, request: Any, view: Any = None) -> list[Any] | None:
        try:
            return super().paginate_queryset(queryset, request, view)
        except DjangoValidationError as exc:  # a forged position of the wrong type
            raise NotFound(self.invalid_cursor_message) from exc


PAGINATION_PARAMETERS = [
    OpenApiParameter("cursor", str, description="Taken from `next` or `previous`."),
    OpenApiParameter("page_size", int, description="Default 20, at most 100."),
]


def paginated(serializer: serializers.Serializer, name: str) -> serializers.Serializer:
    """The OpenAPI shape of a page of ``serializer`` (for views that paginate by hand)."""
    return inline_serializer(
        name=f"Paginated{name}List",
        fields={
            "results": serializer,
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
        },
    )
