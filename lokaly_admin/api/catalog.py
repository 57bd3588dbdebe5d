"""Admin API: stores, products, and stock per store (with the adjustment ledger)."""

from __future__ import annotations

from uuid import UUID

from django.db import DataError
from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from lokaly_admin.api import catalog_serializers as s
from lokaly_core.catalog import services
from lokaly_core.domain.inventory import stock_adjust
from lokaly_core.orders.uow import DjangoUnitOfWork
from lokaly_core.web.errors import ApiError
from lokaly_core.web.pagination import PAGINATION_PARAMETERS, CursorPagination, paginated

CATALOG_ACTIONS = {"GET": "catalog.read", "POST": "catalog.write", "PATCH": "catalog.write"}


class ByName(CursorPagination):
    ordering = ("name", "id")


class StoreListCreateApi(APIView):
    actions = CATALOG_ACTIONS

    @extend_schema(
        parameters=PAGINATION_PARAMETERS,
        responses={200: paginated(s.StoreOutSerializer(many=True), "AdminStore")},
    )
    def get(self, request: Request) -> Response:
        paginator = ByName()
        page = paginator.paginate_queryset(services.stores_all(), request, view=self)
        return paginator.get_paginated_response(s.StoreOutSerializer(page, many=True).data)

    @extend_schema(request=s.StoreInSerializer, responses={201: s.StoreOutSerializer})
    def post(self, request: Request) -> Response:
        serializer = s.StoreInSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        store = services.store_create(**serializer.validated_data)
        return Response(s.StoreOutSerializer(store).data, status=status.HTTP_201_CREATED)


class StoreUpdateApi(APIView):
    actions = CATALOG_ACTIONS

    @extend_schema(request=s.StorePatchSerializer, responses={200: s.StoreOutSerializer})
    def patch(self, request: Request, store_id: UUID) -> Response:
        serializer = s.StorePatchSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        store = services.store_update(store_id=store_id, changes=serializer.validated_data)
        return Response(s.StoreOutSerializer(store).data)


class ProductListCreateApi(APIView):
    actions = CATALOG_ACTIONS

    @extend_schema(
        parameters=PAGINATION_PARAMETERS,
        responses={200: paginated(s.ProductOutSerializer(many=True), "AdminProduct")},
    )
    def get(self, request: Request) -> Response:
        paginator = ByName()
        page = paginator.paginate_queryset(services.products_all(), request, view=self)
        return paginator.get_paginated_response(s.ProductOutSerializer(page, many=True).data)

    @extend_schema(request=s.ProductInSerializer, responses={201: s.ProductOutSerializer})
    def post(self, request: Request) -> Response:
        serializer = s.ProductInSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        product = services.product_create(**serializer.validated_data)
        return Response(s.ProductOutSerializer(product).data, status=status.HTTP_201_CREATED)


class ProductUpdateApi(APIView):
    actions = CATALOG_ACTIONS

    @extend_schema(request=s.ProductPatchSerializer, responses={200: s.ProductOutSerializer})
    def patch(self, request: Request, product_id: UUID) -> Response:
        serializer = s.ProductPatchSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        product = services.product_update(product_id=product_id, changes=serializer.validated_data)
        return Response(s.ProductOutSerializer(product).data)


class StoreStockListApi(APIView):
    action = "stock.read"

    class Pagination(CursorPagination):
        ordering = ("sku", "id")

    @extend_schema(
        parameters=PAGINATION_PARAMETERS,
        responses={200: paginated(s.StockRowSerializer(many=True), "AdminStockRow")},
    )
    def get(self, request: Request, store_id: UUID) -> Response:
        paginator = self.Pagination()
        page = paginator.paginate_queryset(
            services.store_stock(store_id=store_id), request, view=self
        )
        return paginator.get_paginated_response(s.StockRowSerializer(page, many=True).data)


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
