"""The OpenAPI schema's generator: drf-spectacular's, with one naming rule for lists."""

from __future__ import annotations

from typing import Any

from drf_spectacular import openapi
from drf_spectacular.plumbing import force_instance
from rest_framework import serializers

PAGE_FIELDS = {"results", "next", "previous"}
LIST_FIELDS = (serializers.ListSerializer, serializers.ListField)


class AutoSchema(openapi.AutoSchema):
    """Operation ids say what the operation does (``<path>_<action>``, docs/api.md): a GET
    answering a page or a list is ``..._list``, one object ``..._retrieve``.

    drf-spectacular names a GET ``..._list`` only when it answers a bare list (or is a
    ViewSet's ``list``); the views here answer a page, ``{"results", "next", "previous"}``
    (lokaly_core.web.pagination), and it would name them ``..._retrieve``, as would a
    client generated from the schema.
    """

    def get_operation_id(self) -> str:
        operation_id: str = super().get_operation_id()
        if self.method == "GET" and operation_id.endswith("_retrieve") and self._answers_a_page():
            return operation_id.removesuffix("_retrieve") + "_list"
        return operation_id

    def _answers_a_page(self) -> bool:
        declared: Any = self.get_response_serializers()
        if isinstance(declared, dict):  # @extend_schema(responses={200: ...})
            declared = declared.get(200, declared.get("200"))
        page = force_instance(declared)
        return (
            isinstance(page, serializers.Serializer)
            and PAGE_FIELDS <= set(page.fields)
            and isinstance(page.fields["results"], LIST_FIELDS)
        )
