"""Admin API: orders (list, detail, cancel) and picking (start, complete)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

import django_filters
from django.conf import settings
from django.urls import path
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from lokaly_core.domain.delivery import delivery_complete_by_admin
from lokaly_core.domain.model.orders import MAX_QUANTITY, Actor
from lokaly_core.domain.picking import picking_complete, picking_start
from lokaly_core.domain.services import order_cancel
from lokaly_core.domain.substitutions import SubstituteRequest, picking_record_line
from lokaly_core.orders import selectors
from lokaly_core.orders.models import Order
from lokaly_core.orders.uow import DjangoUnitOfWork
from lokaly_core.web.pagination import PAGINATION_PARAMETERS, CursorPagination, paginated

ORDERINGS = {"-created_at": ("-created_at", "-id"), "created_at": ("created_at", "id")}
MAX_SEARCH_LENGTH = 254  # the longest email


class OrderFilter(django_filters.FilterSet):
    """Validates the list's query parameters; ``selectors.admin_orders`` applies them."""

    status = django_filters.ChoiceFilter(choices=Order.Status.choices)
    store_id = django_filters.UUIDFilter()
    customer_id = django_filters.UUIDFilter()
    created_after = django_filters.IsoDateTimeFilter()
    created_before = django_filters.IsoDateTimeFilter()
    search = django_filters.CharFilter(max_length=MAX_SEARCH_LENGTH, strip=True)
    ordering = django_filters.ChoiceFilter(choices=[(k, k) for k in ORDERINGS])

    class Meta:
        model = Order
        fields: list[str] = []

    def clean(self) -> dict[str, Any]:
        if not self.is_valid():
            raise ValidationError(_form_errors(self.errors))
        data = dict(self.form.cleaned_data)
        if "\x00" in (data.get("search") or ""):  # PostgreSQL refuses NUL in text
            raise ValidationError({"search": ["Null characters are not allowed."]})
        after, before = data.get("created_after"), data.get("created_before")
        if after and before and after >= before:
            raise ValidationError({"created_before": ["Must be later than created_after."]})
        return data


def _form_errors(errors: Any) -> dict[str, list[str]]:
    return {field: [str(m) for m in messages] for field, messages in errors.items()}


def _pagination(ordering: str | None) -> CursorPagination:
    paginator = CursorPagination()
    paginator.ordering = ORDERINGS[ordering or "-created_at"]
    return paginator


# -- OpenAPI shapes (documentation only; the views render through the selectors) -------

CUSTOMER = inline_serializer(
    "AdminOrderCustomer",
    {
        "id": serializers.UUIDField(),
        "email": serializers.EmailField(),
        "name": serializers.CharField(),
    },
)
# Choice sets named in the schema (settings' ENUM_NAME_OVERRIDES): three fields are
# called "status".
ORDER_STATUSES = [s for s, _ in Order.Status.choices]
PICKING_STATUSES = ["started", "completed"]
CURRENT_DELIVERY_STATUSES = ["assigned", "picked_up", "delivered"]

DELIVERY = inline_serializer(
    "AdminOrderDelivery",
    {
        "id": serializers.UUIDField(),
        "status": serializers.ChoiceField(choices=CURRENT_DELIVERY_STATUSES),
        "courier": inline_serializer(
            "AdminOrderCourier", {"id": serializers.UUIDField(), "name": serializers.CharField()}
        ),
        "assigned_at": serializers.DateTimeField(),
        "picked_up_at": serializers.DateTimeField(allow_null=True),
        "delivered_at": serializers.DateTimeField(allow_null=True),
    },
    allow_null=True,
)
SUBSTITUTION_STATUSES = ["proposed", "accepted", "rejected", "expired"]
ORDER_SUBSTITUTIONS = inline_serializer(
    "AdminOrderSubstitution",
    {
        "product_id": serializers.UUIDField(),
        "substitute": inline_serializer(
            "AdminOrderSubstitute",
            {
                "product_id": serializers.UUIDField(),
                "name": serializers.CharField(),
                "quantity": serializers.IntegerField(),
                "unit_price_cents": serializers.IntegerField(),
            },
        ),
        "status": serializers.ChoiceField(choices=SUBSTITUTION_STATUSES),
        "expires_at": serializers.DateTimeField(),
    },
    many=True,
    required=False,
    help_text="v1.1: every substitute proposed during the picking; absent when none was.",
)
ORDER_FIELDS: dict[str, serializers.Field] = {
    "id": serializers.UUIDField(),
    "number": serializers.CharField(),
    "status": serializers.ChoiceField(choices=ORDER_STATUSES),
    "status_version": serializers.IntegerField(),
    "store_id": serializers.UUIDField(),
    "customer_id": serializers.UUIDField(),
    "items": serializers.ListField(child=serializers.DictField()),
    "subtotal_cents": serializers.IntegerField(),
    "delivery_fee_cents": serializers.IntegerField(),
    "total_cents": serializers.IntegerField(),
    "currency": serializers.CharField(),
    "delivery_address": serializers.DictField(),
    "note": serializers.CharField(),
    "cancel_reason": serializers.CharField(allow_null=True),
    "delivery": DELIVERY,
    "created_at": serializers.DateTimeField(),
    "updated_at": serializers.DateTimeField(),
    "substitutions": ORDER_SUBSTITUTIONS,
    "customer": CUSTOMER,
}
ORDER_ROW = inline_serializer("AdminOrder", ORDER_FIELDS)
PICKING_FIELDS: dict[str, serializers.Field] = {
    "status": serializers.ChoiceField(choices=PICKING_STATUSES),
    "started_at": serializers.DateTimeField(),
    "completed_at": serializers.DateTimeField(allow_null=True),
}
PICKING = inline_serializer("AdminPicking", {"order_id": serializers.UUIDField(), **PICKING_FIELDS})
PICKING_SUBSTITUTE = inline_serializer(
    "AdminPickingSubstitute",
    {
        "product_id": serializers.UUIDField(),
        "name": serializers.CharField(),
        "quantity": serializers.IntegerField(),
        "unit_price_cents": serializers.IntegerField(),
        "status": serializers.ChoiceField(choices=SUBSTITUTION_STATUSES),
        "expires_at": serializers.DateTimeField(),
        "answered_at": serializers.DateTimeField(allow_null=True),
    },
    allow_null=True,
)
PICKING_LINE = inline_serializer(
    "AdminPickingLine",
    {
        "product_id": serializers.UUIDField(),
        "ordered_quantity": serializers.IntegerField(),
        "picked_quantity": serializers.IntegerField(
            help_text="As recorded; the ordered quantity while never recorded."
        ),
        "substitute": PICKING_SUBSTITUTE,
        "recorded_at": serializers.DateTimeField(
            allow_null=True, help_text="Null: never recorded (counts as picked in full)."
        ),
    },
    many=True,
)
PICKING_WITH_LINES = inline_serializer(
    "AdminPickingWithLines",
    {"order_id": serializers.UUIDField(), **PICKING_FIELDS, "lines": PICKING_LINE},
)
ORDER_DETAIL = inline_serializer(
    "AdminOrderDetail",
    {
        **ORDER_FIELDS,
        "history": serializers.ListField(child=serializers.DictField()),
        "picking": inline_serializer(
            "AdminOrderPicking", {**PICKING_FIELDS, "lines": PICKING_LINE}, allow_null=True
        ),
        "events": inline_serializer(
            "AdminOrderEvent",
            {
                "event_id": serializers.UUIDField(),
                "type": serializers.CharField(),
                "occurred_at": serializers.DateTimeField(),
                "published_at": serializers.DateTimeField(allow_null=True),
            },
            many=True,
        ),
    },
)


class CancelSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=300)


class SubstituteSerializer(serializers.Serializer):
    product_id = serializers.UUIDField(
        help_text="An active product of the order's store, not on the order, same currency."
    )
    quantity = serializers.IntegerField(min_value=1, max_value=MAX_QUANTITY)


class PickingLineSerializer(serializers.Serializer):
    picked_quantity = serializers.IntegerField(
        min_value=0, max_value=MAX_QUANTITY, help_text="0 to the ordered quantity."
    )
    substitute = SubstituteSerializer(allow_null=True, required=False, default=None)


class DeliveryCompleteSerializer(serializers.Serializer):
    reason = serializers.CharField(
        max_length=300, help_text="Why staff completed it (recorded in the order's history)."
    )


# -- views ---------------------------------------------------------------------------------


class OrderListApi(APIView):
    action = "orders.read"

    @extend_schema(
        operation_id="admin_orders_list",
        parameters=[
            OpenApiParameter("status", str, enum=ORDER_STATUSES),
            OpenApiParameter("store_id", UUID),
            OpenApiParameter("customer_id", UUID),
            OpenApiParameter("created_after", str, description="ISO 8601; inclusive."),
            OpenApiParameter("created_before", str, description="ISO 8601; exclusive."),
            OpenApiParameter(
                "search",
                str,
                description="An order number (exact or a prefix) or a customer's email "
                "(exact); both case-insensitive.",
            ),
            OpenApiParameter(
                "ordering", str, enum=list(ORDERINGS), description="Default `-created_at`."
            ),
            *PAGINATION_PARAMETERS,
        ],
        responses={200: paginated(ORDER_ROW.__class__(many=True), "AdminOrder")},
    )
    def get(self, request: Request) -> Response:
        query = OrderFilter(request.query_params).clean()
        ordering = query.pop("ordering", None)
        orders = selectors.admin_orders(**{k: v for k, v in query.items() if v})
        paginator = _pagination(ordering)
        page = paginator.paginate_queryset(orders, request, view=self)
        return paginator.get_paginated_response(selectors.admin_order_rows(page or []))


class OrderDetailApi(APIView):
    action = "orders.read"

    @extend_schema(responses={200: ORDER_DETAIL})
    def get(self, request: Request, order_id: UUID) -> Response:
        order = selectors.admin_order(order_id)
        return Response(selectors.admin_order_detail_to_dict(order))


class OrderCancelApi(APIView):
    action = "orders.cancel"

    @extend_schema(
        request=CancelSerializer,
        responses={200: ORDER_ROW},
        description=(
            "Cancel from `pending`, `confirmed`, `picking` or `ready` (the status machine's "
            "admin moves); reserved stock is released (`inventory.released`). Any other "
            "status is 409 `invalid_transition`."
        ),
    )
    def post(self, request: Request, order_id: UUID) -> Response:
        serializer = CancelSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        order_cancel(
            uow=DjangoUnitOfWork(),
            clock=timezone.now,
            order_id=order_id,
            actor=Actor.ADMIN,
            reason=serializer.validated_data["reason"],
        )
        return Response(selectors.admin_order_to_dict(selectors.admin_order(order_id)))


class OrderDeliveryCompleteApi(APIView):
    action = "orders.deliver"

    @extend_schema(
        request=DeliveryCompleteSerializer,
        responses={200: ORDER_ROW},
        description=(
            "v1.1, proof of delivery: complete the delivery of an `out_for_delivery` order "
            "(a hand-off code locked after 5 wrong tries, or a courier who cannot). The "
            "order is `delivered` and the courier free, with the events of a courier's "
            "drop-off plus `delivery.completed_by_admin`; the history records the staff "
            "member and `reason`. Any other status is 409 `invalid_transition`."
        ),
    )
    def post(self, request: Request, order_id: UUID) -> Response:
        serializer = DeliveryCompleteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        delivery_complete_by_admin(
            uow=DjangoUnitOfWork(),
            clock=timezone.now,
            order_id=order_id,
            staff_id=request.user.id,
            reason=serializer.validated_data["reason"],
        )
        return Response(selectors.admin_order_to_dict(selectors.admin_order(order_id)))


class PickingStartApi(APIView):
    action = "picking.write"

    @extend_schema(
        request=None,
        responses={200: PICKING},
        description="The order must be `confirmed` (else 409 `invalid_transition`); emits "
        "`picking.started`, after which the worker moves the order to `picking`.",
    )
    def post(self, request: Request, order_id: UUID) -> Response:
        picking = picking_start(
            uow=DjangoUnitOfWork(), clock=timezone.now, order_id=order_id, staff_id=request.user.id
        )
        return Response(selectors.picking_to_dict(picking, with_order=True))


class PickingCompleteApi(APIView):
    action = "picking.write"

    @extend_schema(
        request=None,
        responses={200: PICKING},
        description="The picking must be started and not completed (else 409 "
        "`invalid_transition`); emits `picking.completed`, after which the worker moves "
        "the order to `ready`. v1.1: 409 `invalid_transition` while a substitute proposal "
        "is open and not yet expired (details: `waiting_for`, product ids). Lines never "
        "recorded count as picked in full; when the picking changed anything the order is "
        "amended first (items' `picked_quantity`, accepted substitutes as items with "
        "`substitute_for`, totals, units not picked released, `order.amended`), and an "
        "order with nothing left is cancelled with reason `nothing_picked` instead.",
    )
    def post(self, request: Request, order_id: UUID) -> Response:
        picking = picking_complete(
            uow=DjangoUnitOfWork(), clock=timezone.now, order_id=order_id, staff_id=request.user.id
        )
        return Response(selectors.picking_to_dict(picking, with_order=True))


class PickingLineApi(APIView):
    action = "picking.write"

    @extend_schema(
        request=PickingLineSerializer,
        responses={200: PICKING_WITH_LINES},
        description=(
            "v1.1, short picks and substitutions: record what was found of one ordered "
            "product while the picking is started (replacing an earlier record and releasing "
            "what its substitute held). A `substitute` reserves its units (409 "
            "`insufficient_stock` with `product_id`, `available`, `requested` when short) and "
            "is offered to the customer until `SUBSTITUTION_TIMEOUT_SECONDS` from now "
            "(`order.substitution_proposed`). A product not on the order is 404; a substitute "
            "that is unknown, not sold by the store, inactive, on the order already or in "
            "another currency is 400 `validation_error` on `substitute.product_id`; a picking "
            "not started or completed is 409 `invalid_transition`."
        ),
    )
    def post(self, request: Request, order_id: UUID, product_id: UUID) -> Response:
        serializer = PickingLineSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        wanted = data.get("substitute")
        picking_record_line(
            uow=DjangoUnitOfWork(),
            clock=timezone.now,
            order_id=order_id,
            product_id=product_id,
            picked_quantity=data["picked_quantity"],
            substitute=(
                SubstituteRequest(product_id=wanted["product_id"], quantity=wanted["quantity"])
                if wanted
                else None
            ),
            staff_id=request.user.id,
            timeout=timedelta(seconds=settings.SUBSTITUTION_TIMEOUT_SECONDS),
        )
        order = selectors.admin_order(order_id)
        return Response(selectors.picking_detail_to_dict(order, with_order=True))


urlpatterns = [
    path("api/admin/orders", OrderListApi.as_view()),
    path("api/admin/orders/<uuid:order_id>", OrderDetailApi.as_view()),
    path("api/admin/orders/<uuid:order_id>/cancel", OrderCancelApi.as_view()),
    path(
        "api/admin/orders/<uuid:order_id>/delivery/complete", OrderDeliveryCompleteApi.as_view()
    ),
    path("api/admin/orders/<uuid:order_id>/picking/start", PickingStartApi.as_view()),
    path("api/admin/orders/<uuid:order_id>/picking/complete", PickingCompleteApi.as_view()),
    path(
        "api/admin/orders/<uuid:order_id>/picking/lines/<uuid:product_id>",
        PickingLineApi.as_view(),
    ),
]
