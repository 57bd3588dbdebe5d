"""Write side of the catalog (stores, products) and the back office's read of stock.

Stock itself changes only through ``lokaly_core.domain.inventory.stock_adjust`` (and the
order services); this module reads it for staff.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet

from lokaly_core.catalog.models import Product, Store
from lokaly_core.domain.errors import DomainError, ErrorCode, NotFound
from lokaly_core.inventory.models import Stock

STORE_FIELDS = frozenset({"name", "address", "lat", "lng", "is_active", "requires_handoff_code"})
PRODUCT_FIELDS = frozenset({"sku", "name", "price_cents", "currency", "is_active"})
_SKU_UNIQUE = "sku"


class DuplicateSku(DomainError):
    code = ErrorCode.CONFLICT
    default_message = "A product with this sku already exists."


# -- stores -----------------------------------------------------------------------------


def store_create(
    *,
    name: str,
    address: str,
    lat: float,
    lng: float,
    is_active: bool = True,
    requires_handoff_code: bool = False,
) -> Store:
    return Store.objects.create(
        name=name,
        address=address,
        lat=lat,
        lng=lng,
        is_active=is_active,
        requires_handoff_code=requires_handoff_code,
    )


def store_update(*, store_id: UUID, changes: Mapping[str, Any]) -> Store:
    """Apply ``changes`` (a subset of ``STORE_FIELDS``) to the store, under its row lock."""
    with transaction.atomic():
        store = Store.objects.select_for_update().filter(pk=store_id).first()
        if store is None:
            raise NotFound("No such store.")
        _apply(store, changes, STORE_FIELDS)
    return store


def store_get(*, store_id: UUID) -> Store:
    store = Store.objects.filter(pk=store_id).first()
    if store is None:
        raise NotFound("No such store.")
    return store


def stores_all() -> QuerySet[Store]:
    return Store.objects.all()


# -- products ---------------------------------------------------------------------------


def product_create(
    *, sku: str, name: str, price_cents: int, currency: str, is_active: bool = True
) -> Product:
    """Create a product; a taken sku is a ``DuplicateSku`` (the unique index decides)."""
    try:
        with transaction.atomic():
            return Product.objects.create(
                sku=sku, name=name, price_cents=price_cents, currency=currency, is_active=is_active
            )
    except IntegrityError as exc:
        raise _duplicate_sku_or(exc, sku) from exc


def product_update(*, product_id: UUID, changes: Mapping[str, Any]) -> Product:
    """Apply ``changes`` (a subset of ``PRODUCT_FIELDS``) under the product's row lock."""
    try:
        with transaction.atomic():
            product = Product.objects.select_for_update().filter(pk=product_id).first()
            if product is None:
                raise NotFound("No such product.")
            _apply(product, changes, PRODUCT_FIELDS)
    except IntegrityError as exc:
        raise _duplicate_sku_or(exc, str(changes.get("sku", ""))) from exc
    return product


def products_all() -> QuerySet[Product]:
    return Product.objects.all()


# -- stock (read) -----------------------------------------------------------------------


def store_stock(*, store_id: UUID) -> QuerySet[Stock]:
    """The store's stock rows, each annotated with its product's ``sku`` and ``name``.

    Raises ``NotFound`` for an unknown store (an empty list would hide a wrong id).
    """
    store_get(store_id=store_id)
    return Stock.objects.filter(store_id=store_id).annotate(
        sku=F("product__sku"), name=F("product__name")
    )


def stock_row(*, store_id: UUID, product_id: UUID) -> Stock:
    row = store_stock(store_id=store_id).filter(product_id=product_id).first()
    if row is None:
        raise NotFound("The store does not carry this product.")
    return row


# -- helpers ----------------------------------------------------------------------------


def _apply(instance: Store | Product, changes: Mapping[str, Any], allowed: frozenset[str]) -> None:
    fields = [name for name in changes if name in allowed]
    for name in fields:
        setattr(instance, name, changes[name])
    if fields:
        instance.save(update_fields=fields)


def _duplicate_sku_or(exc: IntegrityError, sku: str) -> Exception:
    """``DuplicateSku`` when the unique sku index refused the row, else the original error."""
    constraint = getattr(getattr(exc.__cause__, "diag", None), "constraint_name", "") or ""
    if _SKU_UNIQUE in constraint:
        return DuplicateSku(details={"sku": [f"The sku {sku!r} is taken."]})
    return exc
