"""DRF's JSON renderer on orjson: the same JSON, about ten times less CPU to make it.

The answer is what ``rest_framework.renderers.JSONRenderer`` writes, byte for byte for
the API's bodies (compact, UTF-8, keys in order, UUIDs and timestamps as
``2026-11-27T10:15:00.123456Z``, U+2028/U+2029 escaped); anything orjson does not take
(an integer past 64 bits, a dict with non-string keys, an invalid string, ``indent``
asked for in the Accept header) is rendered by DRF's renderer instead. One difference:
a non-finite float is ``null`` where DRF's renderer raised (a 500); JSON has no NaN.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from rest_framework import renderers
from rest_framework.utils.encoders import JSONEncoder

# DRF's conversions of what JSON lacks (Decimal, timedelta, lazy strings, querysets, ...).
_default = JSONEncoder().default
_OPTIONS = orjson.OPT_UTC_Z


class JSONRenderer(renderers.JSONRenderer):
    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        if data is None:
            return b""
        if not self.compact or self.ensure_ascii or not self.strict or (
            accepted_media_type and "indent" in accepted_media_type
        ) or (renderer_context and renderer_context.get("indent") is not None):
            return super().render(data, accepted_media_type, renderer_context)
        try:
            content = orjson.dumps(data, default=_default, option=_OPTIONS)
        except orjson.JSONEncodeError:
            return super().render(data, accepted_media_type, renderer_context)
        if b"\xe2\x80\xa8" in content or b"\xe2\x80\xa9" in content:
            content = content.replace(b"\xe2\x80\xa8", b"\\u2028").replace(
                b"\xe2\x80\xa9", b"\\u2029"
            )
        return content
