"""The courier app's endpoints: shift, live location, deliveries and their steps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from lokaly_core.delivery import selectors
from lokaly_core.delivery.location import LocationReport, courier_report_location
from lokaly_core.domain.delivery import (
    courier_set_shift,
    delivery_complete,
    delivery_decline,
    delivery_pickup,
)
from lokaly_core.orders.uow import DjangoUnitOfWork
from lokaly_core.web.pagination import PAGINATION_PARAMETERS, CursorPagination, paginated
from lokaly_public import serializers as s
from lokaly_public.permissions import IsCourier, caller


class CourierShiftApi(APIView):
    permission_classes = [IsCourier]

    @extend_schema(
        request=s.ShiftSerializer,
        responses={200: s.ShiftSerializer},
        description="Go online (and be assigned deliveries) or offline. Going offline "
        "keeps a delivery already picked up and releases one assigned but not yet picked "
        "up (`delivery.declined` with reason `courier_offline`; the order is dispatched "
        "again at once). Dispatch only considers couriers with a reported location within "
        "`DISPATCH_RADIUS_M` of the store: report a location before going online.",
    )
    def post(self, request: Request) -> Response:
        serializer = s.ShiftSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        online = courier_set_shift(
            uow=DjangoUnitOfWork(),
            clock=timezone.now,
            courier_id=caller(request).id,
            online=serializer.validated_data["online"],
            release_assigned=True,
        )
        return Response({"online": online})


class CourierLocationApi(APIView):
    permission_classes = [IsCourier]

    @extend_schema(
        request=s.LocationSerializer,
        responses={204: None},
        description="The courier's position, sent at once to the watchers of the orders "
        "the courier is delivering (`courier.location` on the order socket).",
    )
    def post(self, request: Request) -> Response:
        serializer = s.LocationSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        courier_report_location(
            report=LocationReport(
                courier_id=caller(request).id,
                lat=serializer.validated_data["lat"],
                lng=serializer.validated_data["lng"],
                recorded_at=timezone.now(),
            )
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class CourierDeliveryListApi(APIView):
    permission_classes = [IsCourier]

    class Pagination(CursorPagination):
        ordering = ("-assigned_at", "-id")

    @extend_schema(
        operation_id="courier_deliveries_list",
        parameters=PAGINATION_PARAMETERS,
        responses={200: paginated(s.DeliverySerializer(many=True), "Delivery")},
        description="The caller's active deliveries (assigned or picked up), newest first.",
    )
    def get(self, request: Request) -> Response:
        paginator = self.Pagination()
        page = paginator.paginate_queryset(
            selectors.courier_active_deliveries(caller(request).id), request, view=self
        )
        return paginator.get_paginated_response([selectors.delivery_to_dict(d) for d in page or []])


def _act(
    service: Callable[..., Any], request: Request, delivery_id: UUID, **params: Any
) -> Response:
    service(
        uow=DjangoUnitOfWork(),
        clock=timezone.now,
        delivery_id=delivery_id,
        courier_id=caller(request).id,
        **params,
    )
    delivery = selectors.courier_delivery(delivery_id=delivery_id, courier_id=caller(request).id)
    return Response(selectors.delivery_to_dict(delivery))


class CourierDeliveryPickupApi(APIView):
    permission_classes = [IsCourier]

    @extend_schema(
        request=None,
        responses={200: s.DeliverySerializer},
        description="The order must be `ready` (else 409 `invalid_transition`); it goes "
        "`out_for_delivery` and its reserved stock leaves the store.",
    )
    def post(self, request: Request, delivery_id: UUID) -> Response:
        return _act(delivery_pickup, request, delivery_id)


class CourierDeliveryCompleteApi(APIView):
    permission_classes = [IsCourier]

    @extend_schema(
        request=s.DeliveryCompleteSerializer,
        responses={200: s.DeliverySerializer},
        description="After pickup: the order is `delivered` and the courier is free. "
        "v1.1: a delivery from a store that requires a hand-off code "
        "(`handoff_code_required`) needs `handoff_code`: a wrong or missing one is 409 "
        "`invalid_handoff_code` (details `attempts_left`; a missing one costs no attempt); "
        "after 5 wrong codes 409 `handoff_locked`, also for the right code, until staff "
        "complete the delivery.",
    )
    def post(self, request: Request, delivery_id: UUID) -> Response:
        serializer = s.DeliveryCompleteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        code = serializer.validated_data.get("handoff_code")
        return _act(delivery_complete, request, delivery_id, handoff_code=code or None)


class CourierDeliveryDeclineApi(APIView):
    permission_classes = [IsCourier]

    @extend_schema(
        request=None,
        responses={200: s.DeliverySerializer},
        description="Before pickup only (else 409 `invalid_transition`): the delivery is "
        "`declined` and the order is assigned to another courier.",
    )
    def post(self, request: Request, delivery_id: UUID) -> Response:
        return _act(delivery_decline, request, delivery_id)
