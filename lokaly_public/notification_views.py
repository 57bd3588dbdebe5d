"""The caller's notifications (customers and couriers)."""

from __future__ import annotations

from uuid import UUID

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from lokaly_core.notifications import selectors
from lokaly_core.web.pagination import PAGINATION_PARAMETERS, CursorPagination, paginated
from lokaly_public import serializers as s
from lokaly_public.permissions import IsCustomerOrCourier, caller


class NotificationListApi(APIView):
    permission_classes = [IsCustomerOrCourier]

    @extend_schema(
        operation_id="notifications_list",
        parameters=[
            OpenApiParameter("unread", bool, description="`true`: only those not read yet."),
            *PAGINATION_PARAMETERS,
        ],
        responses={200: paginated(s.NotificationSerializer(many=True), "Notification")},
        description="The caller's notifications, newest first.",
    )
    def get(self, request: Request) -> Response:
        query = s.NotificationFilterSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        paginator = CursorPagination()
        page = paginator.paginate_queryset(
            selectors.user_notifications(
                user_id=caller(request).id, unread_only=query.validated_data["unread"]
            ),
            request,
            view=self,
        )
        return paginator.get_paginated_response(
            [selectors.notification_to_dict(n) for n in page or []]
        )


class NotificationReadApi(APIView):
    permission_classes = [IsCustomerOrCourier]

    @extend_schema(
        request=None,
        responses={204: None},
        description="Mark one of the caller's notifications read. Reading it again keeps "
        "the first `read_at`.",
    )
    def post(self, request: Request, notification_id: UUID) -> Response:
        selectors.notification_mark_read(
            notification_id=notification_id, user_id=caller(request).id, clock=timezone.now
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
