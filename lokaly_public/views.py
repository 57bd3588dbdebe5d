"""Public API views: validate input, call a service or selector, serialize output."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.contrib.auth import authenticate
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from lokaly_core.accounts.models import Role, User
from lokaly_core.accounts.tokens import PUBLIC, issue_pair, rotate_refresh
from lokaly_core.catalog.selectors import active_stores, store_products
from lokaly_core.domain.model.orders import Actor, Order
from lokaly_core.domain.services import PlaceOrder, order_cancel, place_order
from lokaly_core.orders import idempotency, selectors
from lokaly_core.orders.intake import IdempotencyClaim, IntakeUnitOfWork, KeyTaken
from lokaly_core.orders.uow import DjangoUnitOfWork
from lokaly_core.web.errors import ApiError
from lokaly_core.web.pagination import PAGINATION_PARAMETERS, CursorPagination, paginated
from lokaly_public import serializers as s
from lokaly_public.permissions import IsCustomer, IsCustomerOrCourier, caller
from lokaly_public.validation import place_order_command


def _user_dict(user: User) -> dict[str, Any]:
    return {"id": str(user.id), "email": user.email, "name": user.name, "role": user.role}


class RegisterApi(APIView):
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    @extend_schema(request=s.RegisterSerializer, responses={201: s.UserSerializer})
    def post(self, request: Request) -> Response:
        serializer = s.RegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = User.objects.create_user(role=Role.CUSTOMER, **serializer.validated_data)
        return Response(_user_dict(user), status=status.HTTP_201_CREATED)


class TokenApi(APIView):
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    @extend_schema(request=s.CredentialsSerializer, responses={200: s.TokenPairSerializer})
    def post(self, request: Request) -> Response:
        serializer = s.CredentialsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = authenticate(
            request,
            username=serializer.validated_data["email"].strip().lower(),
            password=serializer.validated_data["password"],
        )
        if user is None or user.role not in PUBLIC.roles:
            raise ApiError(401, "not_authenticated", "Email or password is wrong.")
        return Response(issue_pair(PUBLIC, user))


class TokenRefreshApi(APIView):
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    @extend_schema(request=s.RefreshSerializer, responses={200: s.TokenPairSerializer})
    def post(self, request: Request) -> Response:
        serializer = s.RefreshSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(rotate_refresh(PUBLIC, serializer.validated_data["refresh"]))


class MeApi(APIView):
    permission_classes = [IsCustomerOrCourier]

    @extend_schema(responses={200: s.UserSerializer})
    def get(self, request: Request) -> Response:
        return Response(_user_dict(caller(request)))


class StoreListApi(APIView):
    permission_classes = [IsCustomerOrCourier]

    class Pagination(CursorPagination):
        ordering = ("name", "id")

    @extend_schema(
        parameters=PAGINATION_PARAMETERS,
        responses={200: paginated(s.StoreSerializer(many=True), "Store")},
    )
    def get(self, request: Request) -> Response:
        paginator = self.Pagination()
        page = paginator.paginate_queryset(active_stores(), request, view=self)
        return paginator.get_paginated_response(s.StoreSerializer(page, many=True).data)


class StoreProductListApi(APIView):
    permission_classes = [IsCustomerOrCourier]

    class Pagination(CursorPagination):
        ordering = ("name", "id")

    @extend_schema(
        parameters=[
            OpenApiParameter("search", str, description="Part of the name, or the sku"),
            *PAGINATION_PARAMETERS,
        ],
        responses={200: paginated(s.ProductSerializer(many=True), "Product")},
    )
    def get(self, request: Request, store_id: UUID) -> Response:
        search = request.query_params.get("search", "").strip()[:100]
        if "\x00" in search:  # PostgreSQL refuses NUL in text: a 500 if it got that far
            raise ApiError(
                400,
                "validation_error",
                "The request has invalid fields.",
                {"search": ["Null characters are not allowed."]},
            )
        paginator = self.Pagination()
        page = paginator.paginate_queryset(
            store_products(store_id=store_id, search=search), request, view=self
        )
        return paginator.get_paginated_response(s.ProductSerializer(page, many=True).data)


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not s.PRINTABLE_KEY.match(key):
        raise ApiError(
            400,
            "validation_error",
            "The request has invalid fields.",
            {"Idempotency-Key": ["Use 1 to 255 printable ASCII characters."]},
        )
    return key


class OrderListCreateApi(APIView):
    permission_classes = [IsCustomer]

    @extend_schema(
        operation_id="orders_list",
        parameters=PAGINATION_PARAMETERS,
        responses={200: paginated(s.OrderOutSerializer(many=True), "Order")},
    )
    def get(self, request: Request) -> Response:
        paginator = CursorPagination()
        page = paginator.paginate_queryset(
            selectors.customer_orders(caller(request).id), request, view=self
        )
        return paginator.get_paginated_response([selectors.order_to_dict(o) for o in page or []])

    @extend_schema(
        request=s.PlaceOrderSerializer,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key", str, OpenApiParameter.HEADER,
                description="Retry-safe creation: the same key and body replay the first response.",
            )
        ],
        responses={201: s.OrderOutSerializer},
    )
    def post(self, request: Request) -> Response:
        key = _idempotency_key(request)
        customer_id = caller(request).id
        command = place_order_command(request.data, customer_id=customer_id)
        if key is None:
            order = _place(command, IntakeUnitOfWork())
            return Response(selectors.created_order_to_dict(order), status=201)
        fingerprint = idempotency.request_fingerprint(request.data)
        stored = idempotency.stored_response(customer_id=customer_id, key=key)
        if stored is None:
            uow = IntakeUnitOfWork(
                claim=IdempotencyClaim(
                    customer_id=customer_id, key=key, fingerprint=fingerprint, respond=_created
                )
            )
            try:
                _place(command, uow)
            except KeyTaken:  # a concurrent retry was stored first: replay it
                stored = idempotency.stored_response(customer_id=customer_id, key=key)
            else:
                assert uow.response is not None  # set by the claim's commit
                return Response(uow.response[1], status=uow.response[0])
        assert stored is not None  # KeyTaken: the other request's key row is committed
        code, body = idempotency.replay(stored, key=key, fingerprint=fingerprint)
        response = Response(body, status=code)
        response["Idempotent-Replayed"] = "true"
        return response


def _place(command: PlaceOrder, uow: IntakeUnitOfWork) -> Order:
    return place_order(
        uow=uow, clock=timezone.now, command=command, delivery_fee_cents=_delivery_fee()
    )


def _created(order: Order) -> tuple[int, dict[str, Any]]:
    return 201, selectors.created_order_to_dict(order)


def _delivery_fee() -> int:
    from django.conf import settings  # read at call time

    return int(settings.DELIVERY_FEE_CENTS)


class OrderDetailApi(APIView):
    permission_classes = [IsCustomer]

    @extend_schema(responses={200: s.OrderOutSerializer})
    def get(self, request: Request, order_id: UUID) -> Response:
        order = selectors.customer_order(order_id=order_id, customer_id=caller(request).id)
        return Response(selectors.order_to_dict(order))


class OrderHistoryApi(APIView):
    permission_classes = [IsCustomer]

    @extend_schema(responses={200: s.StatusChangeSerializer(many=True)})
    def get(self, request: Request, order_id: UUID) -> Response:
        selectors.customer_order(order_id=order_id, customer_id=caller(request).id)
        return Response(selectors.order_history(order_id))


class OrderCancelApi(APIView):
    permission_classes = [IsCustomer]

    @extend_schema(request=s.CancelSerializer, responses={200: s.OrderOutSerializer})
    def post(self, request: Request, order_id: UUID) -> Response:
        serializer = s.CancelSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        order_cancel(
            uow=DjangoUnitOfWork(),
            clock=timezone.now,
            order_id=order_id,
            actor=Actor.CUSTOMER,
            reason=serializer.validated_data["reason"] or "cancelled_by_customer",
            customer_id=caller(request).id,
        )
        order = selectors.customer_order(order_id=order_id, customer_id=caller(request).id)
        return Response(selectors.order_to_dict(order))
