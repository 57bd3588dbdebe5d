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


# ``opening_hours`` as both APIs take and show it (docs/api.md, "Stores: opening hours and
# delivery area"): weekday -> list of ["HH:MM", "HH:MM"] intervals, or null (always open).
_INTERVAL = {
    "type": "array",
    "items": {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"},
    "minItems": 2,
    "maxItems": 2,
}
OPENING_HOURS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "nullable": True,
    "description": (
        "Per weekday (mon ... sun), intervals of local time in the store's time zone, "
        '[["08:00", "22:00"]]; an end not after its start runs past midnight and belongs to '
        "the day it starts; a weekday left out is closed. null: always open."
    ),
    "properties": {
        day: {"type": "array", "items": _INTERVAL}
        for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    },
    "additionalProperties": False,
}
