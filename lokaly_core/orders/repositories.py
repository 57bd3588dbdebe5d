"""The order repository port on PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from django.db import connection
from psycopg.types.json import Jsonb

from lokaly_core.domain.model import orders as d
from lokaly_core.orders.models import Order, OrderLine, OrderStatusChange
from lokaly_core.picking.models import Picking, PickingLine
from lokaly_core.sql import SqlParams, insert_recordset, insert_rows, unnest

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


def _history_insert(changes: Sequence[tuple[UUID, d.StatusChange]]) -> tuple[str, SqlParams]:
    """The INSERT of history rows. ``actor_id`` (v1.1, a staff member's change) is
    written only when a row has one: the other rows' statements stay as they were (the
    intake's ``INSERT ... SELECT`` would type a NULL parameter as text, not uuid)."""
    with_actor = any(c.actor_id is not None for _, c in changes)
    columns = (*_HISTORY_COLUMNS, "actor_id") if with_actor else _HISTORY_COLUMNS
    rows = [
        (order_id, c.status, c.previous_status, c.status_version, c.occurred_at, c.reason)
        + ((c.actor_id,) if with_actor else ())
        for order_id, c in changes
    ]
    return insert_rows(OrderStatusChange, columns, rows)


def _historyinsert_rows(order: d.Order) -> tuple[str, SqlParams]:
    statement = _history_insert([(order.id, c) for c in order.pending_changes])
    order.pending_changes.clear()
    return statement


def order_inserts(order: d.Order) -> list[tuple[str, SqlParams]]:
    """The INSERTs of a new order: its row, its lines, its history (``pending_changes``)."""
    order_insert = insert_rows(
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
    lines_insert = insert_rows(
        OrderLine, _LINE_COLUMNS, [_line_row(order.id, line) for line in order.lines]
    )
    return [order_insert, lines_insert, _historyinsert_rows(order)]


def _line_row(order_id: UUID, line: d.Line) -> tuple[object, ...]:
    """An order line's ``_LINE_COLUMNS`` values."""
    return (
        order_id,
        line.product_id,
        line.name,
        line.quantity,
        line.unit_price_cents,
        line.line_total_cents,
    )


def order_number(value: int) -> str:
    """The order number shown to people, of a value of ``core_order_number_seq``."""
    return f"LK-{value:06d}"


_LINE_SELECT = (
    "l.product_id, l.name, l.quantity, l.unit_price_cents, l.picked_quantity, l.substitute_for_id"
)
# What the order holds besides its lines (v1.1): the substitutes proposed or accepted
# while its picking is started, as a json array of [product_id, quantity] (null: none).
# On the (order, product) unique index of picking lines; a v1 order finds no row, and
# an order that is not being picked (pending ones: the worker's batches) skips the read.
_HELD = (
    "(SELECT json_agg(json_build_array(pl.substitute_id, pl.substitute_quantity)) "  # noqa: S608
    f"FROM {PickingLine._meta.db_table} pl JOIN {Picking._meta.db_table} pk "
    "ON pk.order_id = pl.order_id AND pk.status = 'started' "
    "WHERE pl.order_id = o.id AND o.status IN ('confirmed', 'picking') "
    "AND pl.substitution_status IN ('proposed', 'accepted'))"
)


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
        return order_number(value)

    def add(self, order: d.Order) -> None:
        statements = order_inserts(order)
        with connection.cursor() as cursor:
            cursor.execute(
                "WITH o AS ({}), l AS ({}) {}".format(*(sql for sql, _ in statements)),
                [param for _, params in statements for param in params],
            )

    def get_for_update(self, order_id: UUID) -> d.Order | None:
        columns = ", ".join(f"o.{c}" for c in _ORDER_COLUMNS)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {columns}, {_HELD}, {_LINE_SELECT} "  # noqa: S608
                f"FROM {Order._meta.db_table} o JOIN {OrderLine._meta.db_table} l "
                "ON l.order_id = o.id WHERE o.id = %s ORDER BY l.id FOR UPDATE OF o",
                [order_id],
            )
            rows = cursor.fetchall()
        if not rows:
            return None
        width = len(_ORDER_COLUMNS) + 1  # the order's columns and what it holds besides
        return _order_of(rows[0][:width], [r[width:] for r in rows])

    def save(self, order: d.Order) -> None:
        update = (
            f"UPDATE {Order._meta.db_table} SET status = %s, status_version = %s, "  # noqa: S608
            "cancel_reason = %s, stock_state = %s, updated_at = %s WHERE id = %s"
        )
        params: SqlParams = [
            order.status,
            order.status_version,
            order.cancel_reason,
            order.stock_state,
            order.updated_at,
            order.id,
        ]
        if order.pending_changes:
            history_sql, history_params = _historyinsert_rows(order)
            update = f"WITH u AS ({update}) {history_sql}"
            params += history_params
        with connection.cursor() as cursor:
            cursor.execute(update, params)

    def amend(self, order: d.Order) -> None:
        """Persist the picking's amendment: each ordered line's ``picked_quantity`` and
        total, the substitute lines (new), the order's totals; then ``save``."""
        ordered = [line for line in order.lines if line.substitute_for is None]
        added = [line for line in order.lines if line.substitute_for is not None]
        rows = ", ".join(["(%s::uuid, %s::integer, %s::integer)"] * len(ordered))
        params: SqlParams = [
            v
            for line in ordered
            for v in (line.product_id, line.delivered_quantity, line.line_total_cents)
        ]
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {OrderLine._meta.db_table} AS l SET picked_quantity = v.picked, "  # noqa: S608
                f"line_total_cents = v.total FROM (VALUES {rows}) AS v(product_id, picked, total) "
                "WHERE l.order_id = %s AND l.product_id = v.product_id",
                [*params, order.id],
            )
            if added:
                sql, insert_params = insert_rows(
                    OrderLine,
                    (*_LINE_COLUMNS, "picked_quantity", "substitute_for_id"),
                    [
                        (*_line_row(order.id, line), line.picked_quantity, line.substitute_for)
                        for line in added
                    ],
                )
                cursor.execute(sql, insert_params)
            cursor.execute(
                f"UPDATE {Order._meta.db_table} SET subtotal_cents = %s, total_cents = %s "  # noqa: S608
                "WHERE id = %s",
                [order.subtotal_cents, order.total_cents, order.id],
            )
        self.save(order)

    # -- the worker's batches (lokaly_worker.batch): several orders per statement --------

    def get_many_for_update(self, order_ids: Sequence[UUID]) -> dict[UUID, d.Order]:
        columns = ", ".join(f"o.{c}" for c in _ORDER_COLUMNS)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {columns}, {_HELD}, {_LINE_SELECT} "  # noqa: S608
                f"FROM {Order._meta.db_table} o JOIN {OrderLine._meta.db_table} l "
                "ON l.order_id = o.id WHERE o.id = ANY(%s) ORDER BY o.id, l.id FOR UPDATE OF o",
                [list(dict.fromkeys(order_ids))],
            )
            rows = cursor.fetchall()
        width = len(_ORDER_COLUMNS) + 1
        by_order: dict[UUID, list[tuple[object, ...]]] = {}
        for row in rows:
            by_order.setdefault(row[0], []).append(row)
        return {
            order_id: _order_of(group[0][:width], [r[width:] for r in group])
            for order_id, group in by_order.items()
        }

    def save_many(self, orders: Sequence[d.Order]) -> None:
        if not orders:
            return
        source, params = unnest(
            ("id", "status", "status_version", "cancel_reason", "stock_state", "updated_at"),
            ("uuid", "text", "integer", "text", "text", "timestamptz"),
            [
                (
                    order.id,
                    order.status,
                    order.status_version,
                    order.cancel_reason,
                    order.stock_state,
                    order.updated_at,
                )
                for order in orders
            ],
        )
        update = (
            f"UPDATE {Order._meta.db_table} AS o SET status = v.status, "  # noqa: S608
            "status_version = v.status_version, cancel_reason = v.cancel_reason, "
            f"stock_state = v.stock_state, updated_at = v.updated_at FROM {source} "
            "WHERE o.id = v.id"
        )
        history = [(order.id, c) for order in orders for c in order.pending_changes]
        for order in orders:
            order.pending_changes.clear()
        if history:
            history_sql, history_params = insert_recordset(
                OrderStatusChange,
                (*_HISTORY_COLUMNS, "actor_id"),
                [
                    (order_id, c.status, c.previous_status, c.status_version, c.occurred_at)
                    + (c.reason, c.actor_id)
                    for order_id, c in history
                ],
            )
            update = f"WITH u AS ({update}) {history_sql}"
            params += history_params
        with connection.cursor() as cursor:
            cursor.execute(update, params)


def _order_of(row: Sequence[object], lines: Sequence[Sequence[object]]) -> d.Order:
    """A domain order from its columns (``_ORDER_COLUMNS``, then ``_HELD``) and its
    lines' (``_LINE_SELECT``)."""
    o: dict[str, Any] = dict(zip(_ORDER_COLUMNS, row[:-1], strict=True))
    raw_held: Any = row[-1]
    held: list[list[Any]] = (json.loads(raw_held) if isinstance(raw_held, str) else raw_held) or []
    address = o["delivery_address"]
    return d.Order(
        id=o["id"],
        number=o["number"],
        customer_id=o["customer_id"],
        store_id=o["store_id"],
        status=d.OrderStatus(o["status"]),
        status_version=o["status_version"],
        lines=[
            d.Line(
                product_id=p,  # type: ignore[arg-type]
                name=n,  # type: ignore[arg-type]
                quantity=q,  # type: ignore[arg-type]
                unit_price_cents=u,  # type: ignore[arg-type]
                picked_quantity=picked,  # type: ignore[arg-type]
                substitute_for=replaced,  # type: ignore[arg-type]
            )
            for p, n, q, u, picked, replaced in lines
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
        substitutes_held=[(UUID(str(p)), int(q)) for p, q in held],
    )
