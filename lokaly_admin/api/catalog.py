"""Admin API: stores, products, and stock per store (with the adjustment ledger)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.db import DataError
from django.db.models import QuerySet
from django.urls import path
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from lokaly_admin.api import catalog_serializers as s
from lokaly_admin.api.base import ListApi, ListCreateApi, UpdateApi, page_schema
from lokaly_core.catalog import services
from lokaly_core.domain.inventory import stock_adjust
from lokaly_core.orders.uow import DjangoUnitOfWork
from lokaly_core.web.errors import ApiError
from lokaly_core.web.pagination import CursorPagination

CATALOG_ACTIONS = {"GET": "catalog.read", "POST": "catalog.write", "PATCH": "catalog.write"}


class ByName(CursorPagination):
    ordering = ("name", "id")


@extend_schema_view(
    get=page_schema(s.StoreOutSerializer, "AdminStore"),
    post=extend_schema(request=s.StoreInSerializer, responses={201: s.StoreOutSerializer}),
)
class StoreListCreateApi(ListCreateApi):
    actions = CATALOG_ACTIONS
    pagination_class = ByName
    in_serializer = s.StoreInSerializer
    out_serializer = s.StoreOutSerializer

    def selector(self) -> QuerySet[Any]:
        return services.stores_all()

    def create(self, data: dict[str, Any]) -> Any:
        return services.store_create(**data)


@extend_schema_view(
    patch=extend_schema(request=s.StorePatchSerializer, responses={200: s.StoreOutSerializer})
)
class StoreUpdateApi(UpdateApi):
    actions = CATALOG_ACTIONS
    patch_serializer = s.StorePatchSerializer
    out_serializer = s.StoreOutSerializer
    partial = True

    def update(self, data: dict[str, Any]) -> Any:
        return services.store_update(store_id=self.kwargs["store_id"], changes=data)


@extend_schema_view(
    get=page_schema(s.ProductOutSerializer, "AdminProduct"),
    post=extend_schema(request=s.ProductInSerializer, responses={201: s.ProductOutSerializer}),
)
class ProductListCreateApi(ListCreateApi):
    actions = CATALOG_ACTIONS
    pagination_class = ByName
    in_serializer = s.ProductInSerializer
    out_serializer = s.ProductOutSerializer

    def selector(self) -> QuerySet[Any]:
        return services.products_all()

    def create(self, data: dict[str, Any]) -> Any:
        return services.product_create(**data)


@extend_schema_view(
    patch=extend_schema(request=s.ProductPatchSerializer, responses={200: s.ProductOutSerializer})
)
class ProductUpdateApi(UpdateApi):
    actions = CATALOG_ACTIONS
    patch_serializer = s.ProductPatchSerializer
    out_serializer = s.ProductOutSerializer
    partial = True

    def update(self, data: dict[str, Any]) -> Any:
        return services.product_update(product_id=self.kwargs["product_id"], changes=data)


class BySku(CursorPagination):
    ordering = ("sku", "id")


@extend_schema_view(get=page_schema(s.StockRowSerializer, "AdminStockRow"))
class StoreStockListApi(ListApi):
    action = "stock.read"
    pagination_class = BySku
    out_serializer = s.StockRowSerializer

    def selector(self) -> QuerySet[Any]:
        return services.store_stock(store_id=self.kwargs["store_id"])


class StockAdjustmentCreateApi(APIView):
    action = "stock.adjust"

    @extend_schema(
        request=s.StockAdjustmentInSerializer,
        responses={201: s.StockRowSerializer},
        description=(
            "Change `on_hand` by `delta` and record who, when and why in the ledger. "
            "`on_hand` never drops below `reserved` (409 `insufficient_stock`, with the "
            "current figures in `details`). A positive delta for a product the store does "
            "not carry yet starts carrying it."
        ),
    )
    def post(self, request: Request, store_id: UUID) -> Response:
        services.store_get(store_id=store_id)
        serializer = s.StockAdjustmentInSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            stock_adjust(
                uow=DjangoUnitOfWork(),
                store_id=store_id,
                product_id=data["product_id"],
                delta=data["delta"],
                reason=data["reason"],
                actor_id=request.user.id,
            )
        except DataError as exc:  # on_hand past the integer column's range
            raise ApiError(
                409, "conflict", "On hand would exceed the largest quantity a store can hold."
            ) from exc
        row = services.stock_row(store_id=store_id, product_id=data["product_id"])
        return Response(s.StockRowSerializer(row).data, status=status.HTTP_201_CREATED)


urlpatterns = [
    path("api/admin/stores", StoreListCreateApi.as_view()),
    path("api/admin/stores/<uuid:store_id>", StoreUpdateApi.as_view()),
    path("api/admin/stores/<uuid:store_id>/stock", StoreStockListApi.as_view()),
    path("api/admin/stores/<uuid:store_id>/stock/adjustments", StockAdjustmentCreateApi.as_view()),
    path("api/admin/products", ProductListCreateApi.as_view()),
    path("api/admin/products/<uuid:product_id>", ProductUpdateApi.as_view()),
]
