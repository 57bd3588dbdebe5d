"""The admin API's resource views, written once: list a page, create one, patch one.

A resource's view states only what differs: its selector, its serializers, the service it
calls, its page order, and its OpenAPI schema (``extend_schema_view`` on the view, since
the methods are inherited). The URL's ids are in ``self.kwargs``.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from lokaly_core.web.pagination import PAGINATION_PARAMETERS, CursorPagination, paginated


def page_schema(out_serializer: type[serializers.Serializer], name: str) -> Any:
    """The schema of a ``GET`` answering a page of ``out_serializer`` (``Paginated<name>List``)."""
    return extend_schema(
        parameters=PAGINATION_PARAMETERS,
        responses={200: paginated(out_serializer(many=True), name)},
    )


# No docstrings on these classes: drf-spectacular would give every resource's operations
# the base's docstring as their description.


class ListApi(APIView):
    # GET: a page of selector(), in pagination_class's order.
    pagination_class: type[CursorPagination] = CursorPagination
    out_serializer: type[serializers.Serializer]

    def selector(self) -> QuerySet[Any]:
        raise NotImplementedError

    def get(self, request: Request, **ids: Any) -> Response:
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(self.selector(), request, view=self)
        return paginator.get_paginated_response(self.out_serializer(page, many=True).data)


class ListCreateApi(ListApi):
    # GET as ListApi; POST: in_serializer's data to create(), 201 with what it made.

    in_serializer: type[serializers.Serializer]

    def create(self, data: dict[str, Any]) -> Any:
        raise NotImplementedError

    def post(self, request: Request, **ids: Any) -> Response:
        serializer = self.in_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        created = self.create(serializer.validated_data)
        return Response(self.out_serializer(created).data, status=status.HTTP_201_CREATED)


class UpdateApi(APIView):
    # PATCH: patch_serializer's data to update(), 200 with what it changed.

    patch_serializer: type[serializers.Serializer]
    out_serializer: type[serializers.Serializer]
    partial = False  # True: the serializer's fields are all optional

    def update(self, data: dict[str, Any]) -> Any:
        raise NotImplementedError

    def patch(self, request: Request, **ids: Any) -> Response:
        serializer = self.patch_serializer(data=request.data, partial=self.partial)
        serializer.is_valid(raise_exception=True)
        return Response(self.out_serializer(self.update(serializer.validated_data)).data)
