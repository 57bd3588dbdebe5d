"""The catalog port (``CatalogReader``) on PostgreSQL."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import connection

from lokaly_core.catalog.models import Product, Store, store_hours
from lokaly_core.domain.hours import StoreHours
from lokaly_core.domain.model.catalog import Offer, StoreInfo
from lokaly_core.domain.model.orders import OrderStatus
from lokaly_core.inventory.models import Stock
from lokaly_core.orders.models import Order

# One statement for everything order intake reads before it writes: the store with its
# hours and area, its offers among the products asked for, and (an InitPlan, run once,
# on the partial index order_customer_open_idx) the customer's orders on their way,
# counted up to MAX_OPEN_ORDERS_PER_CUSTOMER only (LIMIT NULL: all of them when there is
# no limit): the check's cost stays bounded however many orders a customer has open.
_STORE_OFFERS_SQL = (
    "SELECT s.is_active, s.accepting_orders, s.timezone, s.opening_hours, "  # noqa: S608
    "s.delivery_radius_m, s.lat, s.lng, "
    f"(SELECT count(*) FROM (SELECT 1 FROM {Order._meta.db_table} o WHERE o.customer_id = %s "
    f"AND o.status NOT IN ('{OrderStatus.DELIVERED}', '{OrderStatus.CANCELLED}') "
    "LIMIT %s) open_orders), "
    "p.id, p.name, p.price_cents, p.currency, p.is_active "
    f"FROM {Store._meta.db_table} s LEFT JOIN {Stock._meta.db_table} st "
    "ON st.store_id = s.id AND st.product_id = ANY(%s) "
    f"LEFT JOIN {Product._meta.db_table} p ON p.id = st.product_id WHERE s.id = %s"
)
_OFFER_COLUMNS = 8  # the store's columns (and the count) before each row's product


class OrmCatalog:
    _sql = _STORE_OFFERS_SQL

    def get_store_offers(
        self, store_id: UUID, product_ids: Sequence[UUID], *, customer_id: UUID | None = None
    ) -> tuple[StoreInfo | None, dict[UUID, Offer]]:
        with connection.cursor() as cursor:
            cursor.execute(
                self._sql,
                [customer_id, _open_orders_cap(), list(product_ids), store_id],
            )
            rows = self._take_prefix(cursor.fetchall())
        if not rows:
            return None, {}
        offers = {
            pid: Offer(product_id=pid, name=name, price_cents=price, currency=cur, is_active=active)
            for pid, name, price, cur, active in (row[_OFFER_COLUMNS:] for row in rows)
            if pid is not None
        }
        active, accepting, tz, hours, radius, lat, lng, open_orders = rows[0][:_OFFER_COLUMNS]
        store = StoreInfo(
            id=store_id,
            is_active=active,
            lat=lat,
            lng=lng,
            hours=_hours(tz, hours, accepting),
            delivery_radius_m=radius,
            customer_open_orders=open_orders,
        )
        return store, offers

    def _take_prefix(self, rows: list[Any]) -> list[Any]:
        return rows


class NumberingCatalog(OrmCatalog):
    """The catalog read of order intake, which also draws the order's number from its
    sequence (an InitPlan: once per statement, not per row): one round trip fewer per
    order. A request refused after the read leaves a gap in the numbers, as a rolled
    back one always did; ``next_number`` takes it when the order is placed."""

    _sql = "SELECT (SELECT nextval('core_order_number_seq')), " + _STORE_OFFERS_SQL.removeprefix(
        "SELECT "
    )

    def __init__(self) -> None:
        self.drawn: int | None = None

    def _take_prefix(self, rows: list[Any]) -> list[Any]:
        if rows:
            self.drawn = int(rows[0][0])
        return [row[1:] for row in rows]


def _open_orders_cap() -> int | None:
    """How far intake counts a customer's open orders: to the limit, which is all the
    domain compares with (None, no limit, counts them all)."""
    limit = int(settings.MAX_OPEN_ORDERS_PER_CUSTOMER)
    return limit if limit > 0 else None


@functools.lru_cache(maxsize=1024)
def _hours(timezone: str, opening_hours: str | None, accepting_orders: bool) -> StoreHours:
    """``store_hours`` of the columns as they come (Django's psycopg reads jsonb as text),
    remembered: intake reads the same few stores' hours over and over."""
    raw = json.loads(opening_hours) if opening_hours is not None else None
    return store_hours(timezone, raw, accepting_orders)
