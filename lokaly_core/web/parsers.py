from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing with a 400 (not a 500, not a long parse) what it cannot take.

    - A body over ``DATA_UPLOAD_MAX_MEMORY_SIZE``: DRF reads the request stream itself, so
      Django's own check of that setting (on ``request.body``) never runs.
    - JSON nested too deep: ``json`` raises ``RecursionError`` (not a ``ValueError``) past
      about a thousand levels, which DRF's parser lets through.
    """

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        request = (parser_context or {}).get("request")
        if limit is not None and request is not None and _content_length(request) > limit:
            raise ParseError(f"The body is larger than {limit} bytes.")
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise ParseError("JSON parse error - the document is nested too deeply.") from exc


def _content_length(request: Any) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0
