"""Public API views: validate input, call a service or selector, serialize output."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.contrib.auth import authenticate
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from lokaly_core.accounts import lockout, session_store
from lokaly_core.accounts.models import Role, User
from lokaly_core.accounts.services import EmailTaken, user_create
from lokaly_core.accounts.tokens import PUBLIC, issue_pair, logout, rotate_refresh
from lokaly_core.catalog.selectors import active_stores, store_products
from lokaly_core.domain.model.orders import Actor, Order
from lokaly_core.domain.services import PlaceOrder, order_cancel, place_order
from lokaly_core.domain.substitutions import substitution_answer
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
        try:
            # The service handles two sign-ups of one email at once (the unique index).
            user = user_create(role=Role.CUSTOMER, **serializer.validated_data)
        except EmailTaken as exc:  # the same answer as the serializer's check
            raise ApiError(
                400, "validation_error", "The request has invalid fields.", exc.details
            ) from exc
        return Response(_user_dict(user), status=status.HTTP_201_CREATED)


LOCKOUT = (
    "After `LOGIN_MAX_FAILURES` (5) failed logins for one email within "
    "`LOGIN_FAILURE_WINDOW_SECONDS` (900), counted across every login path of both APIs "
    "and the admin site, every attempt for that email is 429 `rate_limited` with "
    "`Retry-After` until the window has passed; a successful login clears the count."
)


class TokenApi(APIView):
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=s.CredentialsSerializer,
        responses={
            200: s.TokenPairSerializer,
            401: OpenApiResponse(description="Wrong credentials, or not a public account."),
            429: OpenApiResponse(description="Too many failed logins for this account."),
        },
        description=f"Starts a session (contract v1.1). {LOCKOUT}",
    )
    def post(self, request: Request) -> Response:
        serializer = s.CredentialsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        email = serializer.validated_data["email"].strip().lower()
        user = authenticate(request, username=email, password=serializer.validated_data["password"])
        if user is None or user.role not in PUBLIC.roles:
            if user is not None:  # right password, wrong API: counted like a wrong one
                lockout.record_failure(email)
            raise ApiError(401, "not_authenticated", "Email or password is wrong.")
        return Response(issue_pair(PUBLIC, user))


class TokenRefreshApi(APIView):
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=s.RefreshSerializer,
        responses={200: s.TokenPairSerializer},
        description=(
            "Exchange a refresh token for a new pair of the same session. Each refresh token "
            "works once: reusing one is 401 `token_invalid` and ends its whole session."
        ),
    )
    def post(self, request: Request) -> Response:
        serializer = s.RefreshSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(rotate_refresh(PUBLIC, serializer.validated_data["refresh"]))


class LogoutApi(APIView):
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=s.RefreshSerializer,
        responses={204: None, 401: OpenApiResponse(description="Not a valid refresh token.")},
        description=(
            "Ends the session of this refresh token: its access and refresh tokens stop "
            "working; the account's other sessions keep theirs."
        ),
    )
    def post(self, request: Request) -> Response:
        serializer = s.RefreshSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        logout(PUBLIC, serializer.validated_data["refresh"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class PasswordApi(APIView):
    permission_classes = [IsCustomerOrCourier]

    @extend_schema(
        request=s.PasswordChangeSerializer,
        responses={200: s.TokenPairSerializer},
        description=(
            "Change the password: answers a new pair in a new session, and every other "
            "session of the account (the caller's current one too) ends. A wrong "
            "`current_password` is 400 `validation_error` and counts as a failed login."
        ),
    )
    def post(self, request: Request) -> Response:
        serializer = s.PasswordChangeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        me = caller(request)
        checked = authenticate(
            request, username=me.email, password=serializer.validated_data["current_password"]
        )
        if checked is None or checked.pk != me.pk:
            raise ApiError(
                400,
                "validation_error",
                "The request has invalid fields.",
                {"current_password": ["The current password is wrong."]},
            )
        new_password = serializer.validated_data["new_password"]
        try:
            validate_password(new_password, checked)
        except DjangoValidationError as exc:
            raise ApiError(
                400,
                "validation_error",
                "The request has invalid fields.",
                {"new_password": list(exc.messages)},
            ) from exc
        with transaction.atomic():
            checked.set_password(new_password)
            checked.save(update_fields=["password"])
            session_store.sessions_revoke_all(checked.pk, reason="password_changed")
            pair = issue_pair(PUBLIC, checked)
        return Response(pair)


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
        responses={200: paginated(s.CustomerOrderSerializer(many=True), "Order")},
    )
    def get(self, request: Request) -> Response:
        paginator = CursorPagination()
        page = paginator.paginate_queryset(
            selectors.customer_orders(caller(request).id), request, view=self
        )
        return paginator.get_paginated_response(
            [selectors.customer_order_to_dict(o) for o in page or []]
        )

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
        uow=uow,
        clock=timezone.now,
        command=command,
        delivery_fee_cents=_delivery_fee(),
        max_open_orders=_max_open_orders(),
    )


def _created(order: Order) -> tuple[int, dict[str, Any]]:
    return 201, selectors.created_order_to_dict(order)


def _delivery_fee() -> int:
    from django.conf import settings  # read at call time

    return int(settings.DELIVERY_FEE_CENTS)


def _max_open_orders() -> int | None:
    from django.conf import settings  # read at call time

    limit = int(settings.MAX_OPEN_ORDERS_PER_CUSTOMER)
    return limit if limit > 0 else None


class OrderDetailApi(APIView):
    permission_classes = [IsCustomer]

    @extend_schema(responses={200: s.CustomerOrderSerializer})
    def get(self, request: Request, order_id: UUID) -> Response:
        order = selectors.customer_order(order_id=order_id, customer_id=caller(request).id)
        return Response(selectors.customer_order_to_dict(order))


class OrderHistoryApi(APIView):
    permission_classes = [IsCustomer]

    @extend_schema(responses={200: s.StatusChangeSerializer(many=True)})
    def get(self, request: Request, order_id: UUID) -> Response:
        selectors.customer_order(order_id=order_id, customer_id=caller(request).id)
        return Response(selectors.order_history(order_id))


class OrderCancelApi(APIView):
    permission_classes = [IsCustomer]

    @extend_schema(request=s.CancelSerializer, responses={200: s.CustomerOrderSerializer})
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
        return Response(selectors.customer_order_to_dict(order))


class OrderSubstitutionAnswerApi(APIView):
    permission_classes = [IsCustomer]

    @extend_schema(
        request=s.SubstitutionAnswerSerializer,
        responses={200: s.CustomerOrderSerializer},
        description=(
            "v1.1: accept or refuse the substitute proposed for the missing units of "
            "`product_id` (the order's `substitutions`). A refused substitute's units are "
            "released. Another customer's order is 404. No proposal waiting for an answer "
            "(none, answered already, the order no longer being picked) is 409 "
            "`invalid_transition`; so is an answer after `expires_at` (details: `status` "
            "`expired`), the proposal then counting as expired."
        ),
    )
    def post(self, request: Request, order_id: UUID, product_id: UUID) -> Response:
        serializer = s.SubstitutionAnswerSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        customer_id = caller(request).id
        substitution_answer(
            uow=DjangoUnitOfWork(),
            clock=timezone.now,
            order_id=order_id,
            product_id=product_id,
            customer_id=customer_id,
            accept=serializer.validated_data["accept"],
        )
        order = selectors.customer_order(order_id=order_id, customer_id=customer_id)
        return Response(selectors.customer_order_to_dict(order))
