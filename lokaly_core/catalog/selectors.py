"""Read side of the catalog: stores and what a store sells, with live availability."""

from __future__ import annotations

from uuid import UUID

from django.db.models import F, QuerySet

from lokaly_core.catalog.models import Store
from lokaly_core.domain.errors import NotFound
from lokaly_core.inventory.models import Stock


def active_stores() -> QuerySet[Store]:
    return Store.objects.filter(is_active=True).order_by("name", "id")


def store_products(*, store_id: UUID, search: str = "") -> QuerySet[Stock]:
    """Active products an active store carries, annotated with ``available_quantity``."""
    if not Store.objects.filter(pk=store_id, is_active=True).exists():
        raise NotFound("No such store.")
    qs = (
        Stock.objects.filter(store_id=store_id, product__is_active=True)
        .select_related("product")
        .annotate(available_quantity=F("on_hand") - F("reserved"), name=F("product__name"))
    )
    if search:
        qs = qs.filter(product__name__icontains=search) | qs.filter(product__sku__iexact=search)
    return qs.order_by("name", "id")
