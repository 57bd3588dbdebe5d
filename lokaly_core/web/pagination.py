from __future__ import annotations

from rest_framework import pagination


class CursorPagination(pagination.CursorPagination):
    """``{"results", "next", "previous"}``, ``?page_size=`` (default 20, max 100), ``?cursor=``."""

    page_size = 20
    max_page_size = 100
    page_size_query_param = "page_size"
    ordering = ("-created_at", "-id")
