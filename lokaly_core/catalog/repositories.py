"""The catalog port (``CatalogReader``) on PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from django.db import connection

from lokaly_core.catalog.models import Product, Store
from lokaly_core.domain.model.catalog import Offer, StoreInfo
from lokaly_core.inventory.models import Stock

_STORE_OFFERS_SQL = (
    "SELECT s.is_active, p.id, p.name, p.price_cents, p.currency, p.is_active "  # noqa: S608
    f"FROM {Store._meta.db_table} s LEFT JOIN {Stock._meta.db_table} st "
    "ON st.store_id = s.id AND st.product_id = ANY(%s) "
    f"LEFT JOIN {Product._meta.db_table} p ON p.id = st.product_id WHERE s.id = %s"
)


class OrmCatalog:
    def get_store_offers(
        self, store_id: UUID, product_ids: Sequence[UUID]
    ) -> tuple[StoreInfo | None, dict[UUID, Offer]]:
        with connection.cursor() as cursor:
            cursor.execute(_STORE_OFFERS_SQL, [list(product_ids), store_id])
            rows = cursor.fetchall()
        if not rows:
            return None, {}
        offers = {
            pid: Offer(product_id=pid, name=name, price_cents=price, currency=cur, is_active=active)
            for _store_active, pid, name, price, cur, active in rows
            if pid is not None
        }
        return StoreInfo(id=store_id, is_active=rows[0][0]), offers
