"""The stock repository port on PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from django.db import connection
from django.utils import timezone

from lokaly_core.catalog.models import Product, Store
from lokaly_core.domain.model.inventory import StockLevel
from lokaly_core.inventory.models import Stock, StockAdjustment
from lokaly_core.sql import SqlParams, unnest

_STOCK = Stock._meta.db_table


def _values(lines: Sequence[tuple[UUID, int]]) -> tuple[str, SqlParams]:
    """(product_id, quantity) rows as ``unnest(...) AS v(product_id, q)`` and its
    parameters (``lokaly_core.sql.unnest``: one text for any number of lines)."""
    return unnest(("product_id", "q"), ("uuid", "integer"), lines)


class OrmStock:
    """Stock changes in two round trips, whatever the number of lines.

    Rows are locked in product id order (callers pass ``Order.stock_lines()``, sorted) so
    concurrent reservations never deadlock; the check constraint
    ``0 <= reserved <= on_hand`` stays the last line of defence against overselling.
    """

    def try_reserve(self, store_id: UUID, lines: Sequence[tuple[UUID, int]]) -> list[UUID]:
        wanted = dict(lines)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT product_id, on_hand - reserved FROM {_STOCK} "  # noqa: S608 - our table
                "WHERE store_id = %s AND product_id = ANY(%s) ORDER BY product_id FOR UPDATE",
                [store_id, list(wanted)],
            )
            available = dict(cursor.fetchall())
            short = [p for p, q in lines if available.get(p, 0) < q]
            if short:
                return short
            rows, params = _values(lines)
            cursor.execute(
                f"UPDATE {_STOCK} AS s SET reserved = s.reserved + v.q, updated_at = now() "  # noqa: S608
                f"FROM {rows} "
                "WHERE s.store_id = %s AND s.product_id = v.product_id",
                [*params, store_id],
            )
        return []

    def lock_available(
        self, items: Sequence[tuple[UUID, UUID]]
    ) -> dict[tuple[UUID, UUID], int]:
        if not items:
            return {}
        pairs, params = unnest(("store_id", "product_id"), ("uuid", "uuid"), items)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT store_id, product_id, on_hand - reserved FROM {_STOCK} "  # noqa: S608
                f"WHERE (store_id, product_id) IN (SELECT store_id, product_id FROM {pairs}) "
                "ORDER BY store_id, product_id FOR UPDATE",
                params,
            )
            return {(s, p): available for s, p, available in cursor.fetchall()}

    def reserve_many(self, rows: Sequence[tuple[UUID, UUID, int]]) -> None:
        if not rows:
            return
        values, params = unnest(
            ("store_id", "product_id", "q"), ("uuid", "uuid", "integer"), rows
        )
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {_STOCK} AS s SET reserved = s.reserved + v.q, updated_at = now() "  # noqa: S608
                f"FROM {values} "
                "WHERE s.store_id = v.store_id AND s.product_id = v.product_id",
                params,
            )

    def release(self, store_id: UUID, lines: Sequence[tuple[UUID, int]]) -> None:
        rows, params = _values(lines)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {_STOCK} AS s SET reserved = s.reserved - v.q, updated_at = now() "  # noqa: S608
                f"FROM {rows} "
                "WHERE s.store_id = %s AND s.product_id = v.product_id",
                [*params, store_id],
            )

    def consume(self, store_id: UUID, lines: Sequence[tuple[UUID, int]]) -> None:
        rows, params = _values(lines)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {_STOCK} AS s SET on_hand = s.on_hand - v.q, "  # noqa: S608
                "reserved = s.reserved - v.q, updated_at = now() "
                f"FROM {rows} "
                "WHERE s.store_id = %s AND s.product_id = v.product_id",
                [*params, store_id],
            )

    def get_level_for_update(self, store_id: UUID, product_id: UUID) -> StockLevel | None:
        row = (
            Stock.objects.select_for_update()
            .filter(store_id=store_id, product_id=product_id)
            .values("on_hand", "reserved")
            .first()
        )
        if row is None:
            return None
        return StockLevel(store_id, product_id, row["on_hand"], row["reserved"])

    def create_level(self, store_id: UUID, product_id: UUID) -> StockLevel | None:
        if not (
            Store.objects.filter(pk=store_id).exists()
            and Product.objects.filter(pk=product_id).exists()
        ):
            return None
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {_STOCK} (store_id, product_id, on_hand, reserved, updated_at) "  # noqa: S608
                "VALUES (%s, %s, 0, 0, now()) ON CONFLICT (store_id, product_id) DO NOTHING",
                [store_id, product_id],
            )
        return self.get_level_for_update(store_id, product_id)

    def record_adjustment(
        self, level: StockLevel, *, delta: int, reason: str, actor_id: UUID | None
    ) -> None:
        stock = Stock.objects.filter(store_id=level.store_id, product_id=level.product_id)
        stock.update(on_hand=level.on_hand, updated_at=timezone.now())
        StockAdjustment.objects.create(
            stock_id=stock.values_list("id", flat=True).get(),
            delta=delta,
            reason=reason,
            on_hand_after=level.on_hand,
            actor_id=actor_id,
        )
