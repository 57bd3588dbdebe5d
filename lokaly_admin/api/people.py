"""Admin API: couriers, customers and staff accounts."""

from __future__ import annotations

from uuid import UUID

from django.urls import path
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from lokaly_admin.api import people_serializers as s
from lokaly_core.accounts import services
from lokaly_core.accounts.models import Role
from lokaly_core.web.errors import ApiError
from lokaly_core.web.pagination import PAGINATION_PARAMETERS, CursorPagination, paginated

EMAIL_TAKEN = "An email already in use (compared case-insensitively) is 409 `conflict`."


class NewestFirst(CursorPagination):
    ordering = ("-date_joined", "-id")


class CourierListCreateApi(APIView):
    actions = {"GET": "couriers.read", "POST": "couriers.write"}

    @extend_schema(
        parameters=PAGINATION_PARAMETERS,
        responses={200: paginated(s.CourierOutSerializer(many=True), "AdminCourier")},
    )
    def get(self, request: Request) -> Response:
        paginator = NewestFirst()
        page = paginator.paginate_queryset(services.couriers_all(), request, view=self)
        return paginator.get_paginated_response(s.CourierOutSerializer(page, many=True).data)

    @extend_schema(
        request=s.AccountInSerializer,
        responses={201: s.CourierOutSerializer},
        description=f"Create a courier account. {EMAIL_TAKEN}",
    )
    def post(self, request: Request) -> Response:
        serializer = s.AccountInSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        courier = services.user_create(**serializer.validated_data, role=Role.COURIER)
        return Response(s.CourierOutSerializer(courier).data, status=status.HTTP_201_CREATED)


class CourierUpdateApi(APIView):
    actions = {"PATCH": "couriers.write"}

    @extend_schema(
        request=s.CourierPatchSerializer,
        responses={200: s.CourierOutSerializer},
        description="Deactivating a courier makes their tokens stop working at once.",
    )
    def patch(self, request: Request, courier_id: UUID) -> Response:
        serializer = s.CourierPatchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        courier = services.courier_set_active(
            courier_id=courier_id, is_active=serializer.validated_data["is_active"]
        )
        return Response(s.CourierOutSerializer(courier).data)


class CustomerListApi(APIView):
    action = "customers.read"

    @extend_schema(
        parameters=[
            OpenApiParameter("search", str, description="Part of the email or the name."),
            *PAGINATION_PARAMETERS,
        ],
        responses={200: paginated(s.CustomerOutSerializer(many=True), "AdminCustomer")},
    )
    def get(self, request: Request) -> Response:
        search = request.query_params.get("search", "").strip()[:100]
        if "\x00" in search:  # PostgreSQL refuses NUL in text: a 500 if it got that far
            raise ApiError(
                400,
                "validation_error",
                "The request has invalid fields.",
                {"search": ["Null characters are not allowed."]},
            )
        paginator = NewestFirst()
        page = paginator.paginate_queryset(
            services.customers_with_order_counts(search=search), request, view=self
        )
        return paginator.get_paginated_response(s.CustomerOutSerializer(page, many=True).data)


class StaffListCreateApi(APIView):
    actions = {"GET": "staff.read", "POST": "staff.write"}

    @extend_schema(
        parameters=PAGINATION_PARAMETERS,
        responses={200: paginated(s.StaffOutSerializer(many=True), "AdminStaff")},
    )
    def get(self, request: Request) -> Response:
        paginator = NewestFirst()
        page = paginator.paginate_queryset(services.staff_all(), request, view=self)
        return paginator.get_paginated_response(s.StaffOutSerializer(page, many=True).data)

    @extend_schema(
        request=s.StaffInSerializer,
        responses={201: s.StaffOutSerializer},
        description=f"Create a staff account (super_admin only). {EMAIL_TAKEN}",
    )
    def post(self, request: Request) -> Response:
        serializer = s.StaffInSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        member = services.user_create(**serializer.validated_data)
        return Response(s.StaffOutSerializer(member).data, status=status.HTTP_201_CREATED)


class StaffUpdateApi(APIView):
    actions = {"PATCH": "staff.write"}

    @extend_schema(
        request=s.StaffPatchSerializer,
        responses={200: s.StaffOutSerializer},
        description=(
            "Change a staff account's role or active flag (super_admin only). Demoting or "
            "deactivating the last active super_admin is 409 `conflict`."
        ),
    )
    def patch(self, request: Request, staff_id: UUID) -> Response:
        serializer = s.StaffPatchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        member = services.staff_update(staff_id=staff_id, **serializer.validated_data)
        return Response(s.StaffOutSerializer(member).data)


urlpatterns = [
    path("api/admin/couriers", CourierListCreateApi.as_view()),
    path("api/admin/couriers/<uuid:courier_id>", CourierUpdateApi.as_view()),
    path("api/admin/customers", CustomerListApi.as_view()),
    path("api/admin/staff", StaffListCreateApi.as_view()),
    path("api/admin/staff/<uuid:staff_id>", StaffUpdateApi.as_view()),
]
