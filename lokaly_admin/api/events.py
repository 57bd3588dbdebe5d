"""Admin API: the event streams, consumer groups, outbox backlog and dead letters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import redis
from django.urls import path
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView

from lokaly_admin.api import events_serializers as s
from lokaly_core.outbox import streams
from lokaly_core.web.errors import ApiError

T = TypeVar("T")
DEFAULT_PAGE = 20


def _redis(call: Callable[[], T]) -> T:
    """Run a Redis call; an unreachable Redis is a 503, never a 500."""
    try:
        return call()
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise ApiError(503, "unavailable", "Redis is unreachable; try again shortly.") from exc


class EventStatsApi(APIView):
    action = "events.read"

    @extend_schema(
        responses={200: s.EventStatsSerializer},
        description=(
            "Per stream (events, dead letters): its length and each consumer group's "
            "`pending` (delivered, not acked: in progress or failing and waiting for a retry) "
            "and `lag` (not yet delivered to the group). A missing stream has length 0."
        ),
    )
    def get(self, request: Request) -> Response:
        return Response(_redis(streams.stream_stats))


class DeadLetterListApi(APIView):
    action = "events.read"

    @extend_schema(
        parameters=[
            OpenApiParameter("cursor", str, description="Taken from `next` (a dead-letter id)."),
            OpenApiParameter("page_size", int, description="Default 20, at most 100."),
        ],
        responses={200: s.DeadLetterPageSerializer},
        description="Oldest first, paginated forward only (`previous` is always null).",
    )
    def get(self, request: Request) -> Response:
        after = request.query_params.get("cursor") or None
        count = _page_size(request.query_params.get("page_size"))
        page, next_after = _redis(lambda: streams.dead_letters(after=after, count=count))
        next_url = None
        if next_after:
            next_url = replace_query_param(request.build_absolute_uri(), "cursor", next_after)
        return Response(
            {"results": [d.as_dict() for d in page], "next": next_url, "previous": None}
        )


class DeadLetterReplayApi(APIView):
    action = "events.replay"

    @extend_schema(
        request=None,
        responses={202: s.ReplayedSerializer},
        description=(
            "Put the event back on the event stream and remove the dead letter (one Redis "
            "transaction). The worker then processes it again; handlers skip effects that "
            "already happened. An unreadable envelope is 409 `conflict` (discard it)."
        ),
    )
    def post(self, request: Request, entry_id: str) -> Response:
        new_id = _redis(lambda: streams.dead_letter_replay(entry_id=entry_id))
        return Response({"id": entry_id, "stream_id": new_id}, status=status.HTTP_202_ACCEPTED)


class DeadLetterDiscardApi(APIView):
    action = "events.replay"

    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request, entry_id: str) -> Response:
        _redis(lambda: streams.dead_letter_discard(entry_id=entry_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


def _page_size(raw: Any) -> int:
    """As DRF's paginators do: the default when missing or not a positive number."""
    try:
        size = int(raw)
    except (TypeError, ValueError):
        return DEFAULT_PAGE
    return min(size, streams.MAX_PAGE) if size > 0 else DEFAULT_PAGE


urlpatterns = [
    path("api/admin/events/stats", EventStatsApi.as_view()),
    path("api/admin/events/dead-letters", DeadLetterListApi.as_view()),
    path("api/admin/events/dead-letters/<str:entry_id>/replay", DeadLetterReplayApi.as_view()),
    path("api/admin/events/dead-letters/<str:entry_id>/discard", DeadLetterDiscardApi.as_view()),
]
