"""The Django implementation of the domain's ports (``lokaly_core.domain.ports``)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import Self
from uuid import UUID

from django.db import connection, transaction

from lokaly_core.catalog.models import Product, Store
from lokaly_core.domain import orders as d
from lokaly_core.domain.ports import Offer, StoreInfo
from lokaly_core.events import Envelope, EventPayload
from lokaly_core.inventory.models import Stock
from lokaly_core.orders.models import Order, OrderLine, OrderStatusChange
from lokaly_core.outbox.models import OutboxEvent
from lokaly_core.outbox.relay import publish_after_commit

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


def to_domain(row: Order, lines: Sequence[OrderLine]) -> d.Order:
    return d.Order(
        id=row.id,
        number=row.number,
        customer_id=row.customer_id,
        store_id=row.store_id,
        status=d.OrderStatus(row.status),
        status_version=row.status_version,
        lines=[
            d.Line(
                product_id=line.product_id,
                name=line.name,
                quantity=line.quantity,
                unit_price_cents=line.unit_price_cents,
            )
            for line in lines
        ],
        delivery_fee_cents=row.delivery_fee_cents,
        currency=row.currency,
        delivery_address=d.Address(**row.delivery_address),
        note=row.note,
        created_at=row.created_at,
        updated_at=row.updated_at,
        cancel_reason=row.cancel_reason,
        stock_state=d.StockState(row.stock_state),
    )


class OrmOrders:
    def next_number(self) -> str:
        with connection.cursor() as cursor:
            cursor.execute("SELECT nextval('core_order_number_seq')")
            (value,) = cursor.fetchone()
        return f"LK-{value:06d}"

    def add(self, order: d.Order) -> None:
        Order.objects.create(
            id=order.id,
            number=order.number,
            customer_id=order.customer_id,
            store_id=order.store_id,
            status=order.status,
            status_version=order.status_version,
            subtotal_cents=order.subtotal_cents,
            delivery_fee_cents=order.delivery_fee_cents,
            total_cents=order.total_cents,
            currency=order.currency,
            delivery_address=order.delivery_address.as_dict(),
            note=order.note,
            cancel_reason=order.cancel_reason,
            stock_state=order.stock_state,
            created_at=order.created_at,
            updated_at=order.updated_at,
        )
        OrderLine.objects.bulk_create(
            OrderLine(
                order_id=order.id,
                product_id=line.product_id,
                name=line.name,
                quantity=line.quantity,
                unit_price_cents=line.unit_price_cents,
                line_total_cents=line.line_total_cents,
            )
            for line in order.lines
        )
        self._flush_history(order)

    def get_for_update(self, order_id: UUID) -> d.Order | None:
        row = Order.objects.select_for_update(of=("self",)).filter(pk=order_id).first()
        if row is None:
            return None
        return to_domain(row, list(OrderLine.objects.filter(order_id=order_id)))

    def save(self, order: d.Order) -> None:
        Order.objects.filter(pk=order.id).update(
            status=order.status,
            status_version=order.status_version,
            cancel_reason=order.cancel_reason,
            stock_state=order.stock_state,
            updated_at=order.updated_at,
        )
        self._flush_history(order)

    @staticmethod
    def _flush_history(order: d.Order) -> None:
        OrderStatusChange.objects.bulk_create(
            OrderStatusChange(
                order_id=order.id,
                status=change.status,
                previous_status=change.previous_status,
                status_version=change.status_version,
                occurred_at=change.occurred_at,
                reason=change.reason,
            )
            for change in order.pending_changes
        )
        order.pending_changes.clear()


_STOCK = Stock._meta.db_table


def _values(lines: Sequence[tuple[UUID, int]]) -> tuple[str, list[object]]:
    """A ``VALUES`` list of (product_id, quantity) rows and its parameters."""
    rows = ", ".join(["(%s::uuid, %s::integer)"] * len(lines))
    params: list[object] = [v for pair in lines for v in pair]
    return rows, params


class OrmStock:
    """Stock changes in two round trips, whatever the number of lines.

    Rows are locked in product id order (callers pass lines sorted, ``stock_lines``) so
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
                f"FROM (VALUES {rows}) AS v(product_id, q) "
                "WHERE s.store_id = %s AND s.product_id = v.product_id",
                [*params, store_id],
            )
        return []

    def release(self, store_id: UUID, lines: Sequence[tuple[UUID, int]]) -> None:
        rows, params = _values(lines)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {_STOCK} AS s SET reserved = s.reserved - v.q, updated_at = now() "  # noqa: S608
                f"FROM (VALUES {rows}) AS v(product_id, q) "
                "WHERE s.store_id = %s AND s.product_id = v.product_id",
                [*params, store_id],
            )


class OutboxRecorder:
    def __init__(self) -> None:
        self.pending: list[Envelope] = []

    def record(self, event: EventPayload, *, aggregate_id: UUID, occurred_at: datetime) -> None:
        self.pending.append(
            Envelope.wrap(event, aggregate_id=aggregate_id, occurred_at=occurred_at)
        )

    def flush(self) -> list[Envelope]:
        envelopes, self.pending = self.pending, []
        OutboxEvent.objects.bulk_create(
            OutboxEvent(
                event_id=e.event_id,
                type=e.type,
                schema_version=e.schema_version,
                occurred_at=e.occurred_at,
                aggregate_id=e.aggregate_id,
                payload=e.payload,
            )
            for e in envelopes
        )
        return envelopes


class DjangoUnitOfWork:
    """One database transaction (a savepoint when nested); events publish after the
    outermost commit.

    ``savepoint=False`` joins a caller's transaction without a savepoint, for callers
    that roll back as a whole when the service raises (the worker's handler
    transaction, which also holds the event's dedup marker): two round trips fewer.
    """

    def __init__(self, *, savepoint: bool = True) -> None:
        self.savepoint = savepoint
        self.catalog = OrmCatalog()
        self.orders = OrmOrders()
        self.stock = OrmStock()
        self.events = OutboxRecorder()
        self.published: list[Envelope] = []

    def __enter__(self) -> Self:
        self._atomic = transaction.atomic(savepoint=self.savepoint)
        self._atomic.__enter__()
        self._committed = False
        return self

    def commit(self) -> None:
        envelopes = self.events.flush()
        if envelopes:
            transaction.on_commit(functools.partial(publish_after_commit, envelopes))
        self.published.extend(envelopes)
        self._committed = True

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None and not self._committed:
            transaction.set_rollback(True)
        self._atomic.__exit__(exc_type, exc, tb)
