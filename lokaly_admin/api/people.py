"""Admin API: couriers, customers and staff accounts."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.urls import path
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view

from lokaly_admin.api import people_serializers as s
from lokaly_admin.api.base import ListApi, ListCreateApi, UpdateApi, page_schema
from lokaly_core.accounts import services
from lokaly_core.accounts.models import Role
from lokaly_core.web.errors import ApiError
from lokaly_core.web.pagination import PAGINATION_PARAMETERS, CursorPagination, paginated

EMAIL_TAKEN = "An email already in use (compared case-insensitively) is 409 `conflict`."


class NewestFirst(CursorPagination):
    ordering = ("-date_joined", "-id")


@extend_schema_view(
    get=page_schema(s.CourierOutSerializer, "AdminCourier"),
    post=extend_schema(
        request=s.AccountInSerializer,
        responses={201: s.CourierOutSerializer},
        description=f"Create a courier account. {EMAIL_TAKEN}",
    ),
)
class CourierListCreateApi(ListCreateApi):
    actions = {"GET": "couriers.read", "POST": "couriers.write"}
    pagination_class = NewestFirst
    in_serializer = s.AccountInSerializer
    out_serializer = s.CourierOutSerializer

    def selector(self) -> QuerySet[Any]:
        return services.couriers_all()

    def create(self, data: dict[str, Any]) -> Any:
        return services.user_create(**data, role=Role.COURIER)


@extend_schema_view(
    patch=extend_schema(
        request=s.CourierPatchSerializer,
        responses={200: s.CourierOutSerializer},
        description="Deactivating a courier makes their tokens stop working at once.",
    )
)
class CourierUpdateApi(UpdateApi):
    actions = {"PATCH": "couriers.write"}
    patch_serializer = s.CourierPatchSerializer
    out_serializer = s.CourierOutSerializer

    def update(self, data: dict[str, Any]) -> Any:
        return services.courier_set_active(
            courier_id=self.kwargs["courier_id"], is_active=data["is_active"]
        )


@extend_schema_view(
    get=extend_schema(
        parameters=[
            OpenApiParameter("search", str, description="Part of the email or the name."),
            *PAGINATION_PARAMETERS,
        ],
        responses={200: paginated(s.CustomerOutSerializer(many=True), "AdminCustomer")},
    )
)
class CustomerListApi(ListApi):
    action = "customers.read"
    pagination_class = NewestFirst
    out_serializer = s.CustomerOutSerializer

    def selector(self) -> QuerySet[Any]:
        search = self.request.query_params.get("search", "").strip()[:100]
        if "\x00" in search:  # PostgreSQL refuses NUL in text: a 500 if it got that far
            raise ApiError(
                400,
                "validation_error",
                "The request has invalid fields.",
                {"search": ["Null characters are not allowed."]},
            )
        return services.customers_with_order_counts(search=search)


# Staff accounts are super_admin's alone (staff.read, staff.write in lokaly_admin.rbac);
# staff_update refuses to demote or deactivate the last active super_admin.
@extend_schema_view(
    get=page_schema(s.StaffOutSerializer, "AdminStaff"),
    post=extend_schema(
        request=s.StaffInSerializer,
        responses={201: s.StaffOutSerializer},
        description=f"Create a staff account (super_admin only). {EMAIL_TAKEN}",
    ),
)
class StaffListCreateApi(ListCreateApi):
    actions = {"GET": "staff.read", "POST": "staff.write"}
    pagination_class = NewestFirst
    in_serializer = s.StaffInSerializer
    out_serializer = s.StaffOutSerializer

    def selector(self) -> QuerySet[Any]:
        return services.staff_all()

    def create(self, data: dict[str, Any]) -> Any:
        return services.user_create(**data)


@extend_schema_view(
    patch=extend_schema(
        request=s.StaffPatchSerializer,
        responses={200: s.StaffOutSerializer},
        description=(
            "Change a staff account's role or active flag (super_admin only). Demoting or "
            "deactivating the last active super_admin is 409 `conflict`."
        ),
    )
)
class StaffUpdateApi(UpdateApi):
    actions = {"PATCH": "staff.write"}
    patch_serializer = s.StaffPatchSerializer
    out_serializer = s.StaffOutSerializer

    def update(self, data: dict[str, Any]) -> Any:
        return services.staff_update(staff_id=self.kwargs["staff_id"], **data)


urlpatterns = [
    path("api/admin/couriers", CourierListCreateApi.as_view()),
    path("api/admin/couriers/<uuid:courier_id>", CourierUpdateApi.as_view()),
    path("api/admin/customers", CustomerListApi.as_view()),
    path("api/admin/staff", StaffListCreateApi.as_view()),
    path("api/admin/staff/<uuid:staff_id>", StaffUpdateApi.as_view()),
]
