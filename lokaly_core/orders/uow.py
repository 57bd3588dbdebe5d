"""The Django implementation of the domain's ports (``lokaly_core.domain.ports``)."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import Self
from uuid import UUID

from django.db import connection, transaction
from django.db.models import Model
from django.utils import timezone
from psycopg.types.json import Jsonb

from lokaly_core.catalog.models import Product, Store
from lokaly_core.domain import orders as d
from lokaly_core.domain import picking as pk
from lokaly_core.domain.inventory import StockLevel
from lokaly_core.domain.ports import Offer, StoreInfo
from lokaly_core.events import Envelope, EventPayload
from lokaly_core.inventory.models import Stock, StockAdjustment
from lokaly_core.orders.models import Order, OrderLine, OrderStatusChange
from lokaly_core.outbox.models import OutboxEvent
from lokaly_core.outbox.relay import publish_after_commit
from lokaly_core.picking.models import Picking as PickingRow

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


def _insert(
    model: type[Model], columns: Sequence[str], rows: Sequence[Sequence[object]]
) -> tuple[str, list[object]]:
    """``INSERT INTO <table> (<columns>) VALUES (...), (...)`` and its parameters."""
    placeholder = "(" + ", ".join(["%s"] * len(columns)) + ")"
    sql = (
        f"INSERT INTO {model._meta.db_table} ({', '.join(columns)}) "  # noqa: S608 - ours
        f"VALUES {', '.join([placeholder] * len(rows))}"
    )
    return sql, [value for row in rows for value in row]


_ORDER_COLUMNS = (
    "id",
    "number",
    "customer_id",
    "store_id",
    "status",
    "status_version",
    "subtotal_cents",
    "delivery_fee_cents",
    "total_cents",
    "currency",
    "delivery_address",
    "note",
    "cancel_reason",
    "stock_state",
    "created_at",
    "updated_at",
)
_LINE_COLUMNS = (
    "order_id",
    "product_id",
    "name",
    "quantity",
    "unit_price_cents",
    "line_total_cents",
)
_HISTORY_COLUMNS = (
    "order_id",
    "status",
    "previous_status",
    "status_version",
    "occurred_at",
    "reason",
)


def _history_insert(order: d.Order) -> tuple[str, list[object]]:
    rows = [
        (order.id, c.status, c.previous_status, c.status_version, c.occurred_at, c.reason)
        for c in order.pending_changes
    ]
    order.pending_changes.clear()
    return _insert(OrderStatusChange, _HISTORY_COLUMNS, rows)


class OrmOrders:
    """Orders on PostgreSQL in one statement per operation.

    Hand-written SQL on purpose: an order is placed on every intake request and changed
    by every worker event, and the ORM's per-query CPU (about 1 ms a query on this
    machine) was most of the time spent there (docs/performance.md).
    """

    def next_number(self) -> str:
        with connection.cursor() as cursor:
            cursor.execute("SELECT nextval('core_order_number_seq')")
            (value,) = cursor.fetchone()
        return f"LK-{value:06d}"

    def add(self, order: d.Order) -> None:
        order_sql, order_params = _insert(
            Order,
            _ORDER_COLUMNS,
            [
                (
                    order.id,
                    order.number,
                    order.customer_id,
                    order.store_id,
                    order.status,
                    order.status_version,
                    order.subtotal_cents,
                    order.delivery_fee_cents,
                    order.total_cents,
                    order.currency,
                    Jsonb(order.delivery_address.as_dict()),
                    order.note,
                    order.cancel_reason,
                    order.stock_state,
                    order.created_at,
                    order.updated_at,
                )
            ],
        )
        lines_sql, lines_params = _insert(
            OrderLine,
            _LINE_COLUMNS,
            [
                (
                    order.id,
                    line.product_id,
                    line.name,
                    line.quantity,
                    line.unit_price_cents,
                    line.line_total_cents,
                )
                for line in order.lines
            ],
        )
        history_sql, history_params = _history_insert(order)
        with connection.cursor() as cursor:
            cursor.execute(
                f"WITH o AS ({order_sql}), l AS ({lines_sql}) {history_sql}",
                [*order_params, *lines_params, *history_params],
            )

    def get_for_update(self, order_id: UUID) -> d.Order | None:
        columns = ", ".join(f"o.{c}" for c in _ORDER_COLUMNS)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {columns}, l.product_id, l.name, l.quantity, l.unit_price_cents "  # noqa: S608
                f"FROM {Order._meta.db_table} o JOIN {OrderLine._meta.db_table} l "
                "ON l.order_id = o.id WHERE o.id = %s ORDER BY l.id FOR UPDATE OF o",
                [order_id],
            )
            rows = cursor.fetchall()
        if not rows:
            return None
        width = len(_ORDER_COLUMNS)
        row, lines = rows[0][:width], [r[width:] for r in rows]
        o = dict(zip(_ORDER_COLUMNS, row, strict=True))
        address = o["delivery_address"]
        return d.Order(
            id=o["id"],
            number=o["number"],
            customer_id=o["customer_id"],
            store_id=o["store_id"],
            status=d.OrderStatus(o["status"]),
            status_version=o["status_version"],
            lines=[
                d.Line(product_id=p, name=n, quantity=q, unit_price_cents=u) for p, n, q, u in lines
            ],
            delivery_fee_cents=o["delivery_fee_cents"],
            currency=o["currency"],
            delivery_address=d.Address(
                **(json.loads(address) if isinstance(address, str) else address)
            ),
            note=o["note"],
            created_at=o["created_at"],
            updated_at=o["updated_at"],
            cancel_reason=o["cancel_reason"],
            stock_state=d.StockState(o["stock_state"]),
        )

    def save(self, order: d.Order) -> None:
        update = (
            f"UPDATE {Order._meta.db_table} SET status = %s, status_version = %s, "  # noqa: S608
            "cancel_reason = %s, stock_state = %s, updated_at = %s WHERE id = %s"
        )
        params: list[object] = [
            order.status,
            order.status_version,
            order.cancel_reason,
            order.stock_state,
            order.updated_at,
            order.id,
        ]
        if order.pending_changes:
            history_sql, history_params = _history_insert(order)
            update = f"WITH u AS ({update}) {history_sql}"
            params += history_params
        with connection.cursor() as cursor:
            cursor.execute(update, params)


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


class OrmPicking:
    def get(self, order_id: UUID) -> pk.Picking | None:
        row = PickingRow.objects.filter(order_id=order_id).first()
        if row is None:
            return None
        return pk.Picking(
            order_id=row.order_id,
            status=pk.PickingStatus(row.status),
            started_at=row.started_at,
            completed_at=row.completed_at,
            started_by=row.started_by_id,
            completed_by=row.completed_by_id,
        )

    def add(self, picking: pk.Picking) -> None:
        PickingRow.objects.create(
            order_id=picking.order_id,
            status=picking.status,
            started_at=picking.started_at,
            started_by_id=picking.started_by,
        )

    def save(self, picking: pk.Picking) -> None:
        PickingRow.objects.filter(order_id=picking.order_id).update(
            status=picking.status,
            completed_at=picking.completed_at,
            completed_by_id=picking.completed_by,
        )


_OUTBOX_COLUMNS = (
    "event_id",
    "type",
    "schema_version",
    "occurred_at",
    "aggregate_id",
    "payload",
    "created_at",
    "stream_id",
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
        if envelopes:
            now = timezone.now()
            rows = [
                (
                    e.event_id,
                    e.type,
                    e.schema_version,
                    e.occurred_at,
                    e.aggregate_id,
                    Jsonb(e.payload),
                    now,
                    "",
                )
                for e in envelopes
            ]
            with connection.cursor() as cursor:
                cursor.execute(*_insert(OutboxEvent, _OUTBOX_COLUMNS, rows))
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
        self.picking = OrmPicking()
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
