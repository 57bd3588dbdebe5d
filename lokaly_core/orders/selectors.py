"""Read side of orders: querysets and the order's contract representation.

Both APIs and the sockets render orders through ``order_to_dict`` so an order looks
the same wherever it is returned.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from uuid import UUID

from django.db.models import F, Prefetch, Q, QuerySet, Subquery
from django.db.models.expressions import RawSQL

from lokaly_core.accounts.models import User
from lokaly_core.delivery.selectors import (
    current_deliveries_by_order,
    current_delivery_of,
    current_delivery_prefetch,
    current_handoff_code_of,
)
from lokaly_core.domain.errors import NotFound
from lokaly_core.domain.model import orders as domain
from lokaly_core.events.contracts import format_timestamp
from lokaly_core.orders.models import Order, OrderLine, OrderStatusChange
from lokaly_core.outbox.models import OutboxEvent
from lokaly_core.picking.models import PickingLine

# v1.1: an order's picking lines (what staff found, the substitutes proposed) as one json
# array, read with the order itself (a correlated subquery on the (order, product) unique
# index: no query more per page, nothing found for a v1 order). Timestamps travel as
# integer microseconds since the epoch, exact. ``{order}`` is the outer order's alias.
PICKING_LINES_SQL = f"""(SELECT json_agg(json_build_object(
    'product_id', pl.product_id, 'ordered_quantity', pl.ordered_quantity,
    'picked_quantity', pl.picked_quantity, 'substitute_id', pl.substitute_id,
    'substitute_name', pl.substitute_name, 'substitute_quantity', pl.substitute_quantity,
    'substitute_unit_price_cents', pl.substitute_unit_price_cents,
    'status', pl.substitution_status,
    'expires_us', (EXTRACT(EPOCH FROM pl.expires_at) * 1000000)::bigint,
    'answered_us', (EXTRACT(EPOCH FROM pl.answered_at) * 1000000)::bigint,
    'recorded_us', (EXTRACT(EPOCH FROM pl.recorded_at) * 1000000)::bigint
  ) ORDER BY pl.id)
  FROM {PickingLine._meta.db_table} pl WHERE pl.order_id = {{order}}.id)"""  # noqa: S608
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _picking_lines_annotation() -> RawSQL:
    table = f'"{Order._meta.db_table}"'
    return RawSQL(PICKING_LINES_SQL.format(order=table), [])  # noqa: S611 - our SQL, no input


def orders_with_lines() -> QuerySet[Order]:
    """Orders ready for ``order_to_dict``: their lines and current delivery prefetched,
    their picking lines annotated (``picking_json``)."""
    return Order.objects.annotate(picking_json=_picking_lines_annotation()).prefetch_related(
        Prefetch("lines", queryset=OrderLine.objects.order_by("id")),
        current_delivery_prefetch(),
    )


def parse_picking_json(value: Any) -> list[dict[str, Any]]:
    """The rows of ``PICKING_LINES_SQL`` as they come (text or parsed json, or null)."""
    rows = json.loads(value) if isinstance(value, str) else value
    return list(rows or [])


def _picking_rows_of(order: Order) -> list[dict[str, Any]]:
    if hasattr(order, "picking_json"):
        return parse_picking_json(order.picking_json)
    annotated = Order.objects.filter(pk=order.pk).annotate(picking_json=_picking_lines_annotation())
    return parse_picking_json(annotated.values_list("picking_json", flat=True).first())


def _from_us(value: int | None) -> str | None:
    return None if value is None else format_timestamp(_EPOCH + timedelta(microseconds=value))


def _substitute_to_dict(row: Mapping[str, Any], *, with_status: bool) -> dict[str, Any] | None:
    if row.get("substitute_id") is None:
        return None
    body: dict[str, Any] = {
        "product_id": str(row["substitute_id"]),
        "name": row["substitute_name"],
        "quantity": row["substitute_quantity"],
        "unit_price_cents": row["substitute_unit_price_cents"],
    }
    if with_status:
        body.update(
            status=row["status"],
            expires_at=_from_us(row["expires_us"]),
            answered_at=_from_us(row.get("answered_us")),
        )
    return body


def substitutions_to_dict(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The order's ``substitutions`` (v1.1): every proposal, in the order recorded,
    ``[{product_id, substitute: {product_id, name, quantity, unit_price_cents}, status,
    expires_at}]``."""
    return [
        {
            "product_id": str(row["product_id"]),
            "substitute": _substitute_to_dict(row, with_status=False),
            "status": row["status"],
            "expires_at": _from_us(row["expires_us"]),
        }
        for row in rows
        if row.get("substitute_id") is not None
    ]


def picking_lines_to_dict(
    ordered: Iterable[Any], rows: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The picking's ``lines``: one per ordered product (substitute lines excluded), in
    the order's order, as recorded, or picked in full when never recorded
    (``recorded_at`` null). ``substitute`` carries the proposal and its answer."""
    records = {str(row["product_id"]): row for row in rows}
    out: list[dict[str, Any]] = []
    for line in ordered:
        if _replaced(line) is not None:
            continue
        record = records.get(str(line.product_id))
        out.append(
            {
                "product_id": str(line.product_id),
                "ordered_quantity": line.quantity,
                "picked_quantity": record["picked_quantity"] if record else line.quantity,
                "substitute": _substitute_to_dict(record, with_status=True) if record else None,
                "recorded_at": _from_us(record["recorded_us"]) if record else None,
            }
        )
    return out


def _replaced(line: Any) -> Any:
    """The product a line substitutes (ORM rows name it ``substitute_for_id``)."""
    if isinstance(line, OrderLine):
        return line.substitute_for_id
    return getattr(line, "substitute_for_id", getattr(line, "substitute_for", None))


def customer_orders(customer_id: UUID) -> QuerySet[Order]:
    return orders_with_lines().filter(customer_id=customer_id)


def customer_order(*, order_id: UUID, customer_id: UUID) -> Order:
    """The customer's own order; another customer's is "not found", never "forbidden"."""
    order = customer_orders(customer_id).filter(pk=order_id).first()
    if order is None:
        raise NotFound("No such order.")
    return order


def order_to_dict(order: Order) -> dict[str, Any]:
    """The contract's order (from ``orders_with_lines``; any other order costs three reads)."""
    return _render(
        order,
        order.lines.all(),
        order.delivery_address,
        current_delivery_of(order),
        substitutions_to_dict(_picking_rows_of(order)),
    )


def customer_order_to_dict(order: Order) -> dict[str, Any]:
    """The order as its customer sees it: ``order_to_dict``, plus the hand-off code while
    the order is out for delivery (v1.1; from ``orders_with_lines``, no extra read)."""
    return with_handoff_code(order_to_dict(order), current_handoff_code_of(order))


def with_handoff_code(order: dict[str, Any], code: str | None) -> dict[str, Any]:
    """``order`` (rendered) with ``handoff_code`` when it is out for delivery and its
    delivery has a code; else unchanged, without the key: a store that requires no code
    shows the v1 shape. For the order's customer only, never the courier or staff."""
    if code is None or order["status"] != domain.OrderStatus.OUT_FOR_DELIVERY:
        return order
    return {**order, "handoff_code": code}


def created_order_to_dict(order: domain.Order) -> dict[str, Any]:
    """The same representation from the domain object just placed (saves a read); a new
    order has no delivery yet, nor substitutions."""
    return _render(order, order.lines, order.delivery_address.as_dict(), None, [])


def _item(line: Any) -> dict[str, Any]:
    item = {
        "product_id": str(line.product_id),
        "name": line.name,
        "quantity": line.quantity,
        "unit_price_cents": line.unit_price_cents,
        "line_total_cents": line.line_total_cents,
    }
    if getattr(line, "picked_quantity", None) is not None:  # v1.1: amended by the picking
        replaced = _replaced(line)
        item["picked_quantity"] = line.picked_quantity
        item["substitute_for"] = str(replaced) if replaced is not None else None
    return item


def _render(
    order: Order | domain.Order | SimpleNamespace,
    lines: Iterable[Any],
    address: dict[str, Any],
    delivery: dict[str, Any] | None,
    substitutions: list[dict[str, Any]],
) -> dict[str, Any]:
    body = {
        "id": str(order.id),
        "number": order.number,
        "status": str(order.status),
        "status_version": order.status_version,
        "store_id": str(order.store_id),
        "customer_id": str(order.customer_id),
        "items": [_item(line) for line in lines],
        "subtotal_cents": order.subtotal_cents,
        "delivery_fee_cents": order.delivery_fee_cents,
        "total_cents": order.total_cents,
        "currency": order.currency,
        "delivery_address": address,
        "note": order.note,
        "cancel_reason": order.cancel_reason,
        "delivery": delivery,
        "created_at": format_timestamp(order.created_at),
        "updated_at": format_timestamp(order.updated_at),
    }
    if substitutions:
        # v1.1: present once staff proposed a substitute; absent otherwise, so that an
        # order without any keeps the v1 shape (the tests of v1 clients pin it).
        body["substitutions"] = substitutions
    return body


def change_to_dict(change: OrderStatusChange) -> dict[str, Any]:
    return {
        "status": change.status,
        "previous_status": change.previous_status,
        "status_version": change.status_version,
        "occurred_at": format_timestamp(change.occurred_at),
        "reason": change.reason,
    }


def order_history(
    order_id: UUID, *, after_version: int = 0, before_version: int | None = None
) -> list[dict[str, Any]]:
    """Status changes with ``after_version < status_version [< before_version]``, oldest first."""
    qs = OrderStatusChange.objects.filter(order_id=order_id, status_version__gt=after_version)
    if before_version is not None:
        qs = qs.filter(status_version__lt=before_version)
    return [change_to_dict(c) for c in qs.order_by("status_version")]


# -- the admin side ---------------------------------------------------------------------


def admin_order_history(order_id: UUID) -> list[dict[str, Any]]:
    """``order_history`` plus each change's ``actor`` (the staff account that made it, or
    null): how staff see who completed a delivery (v1.1). One query."""
    changes = (
        OrderStatusChange.objects.filter(order_id=order_id)
        .select_related("actor")
        .order_by("status_version")
    )
    return [
        {**change_to_dict(c), "actor": customer_to_dict(c.actor) if c.actor else None}
        for c in changes
    ]


_ORDER_COLUMNS = tuple(f.attname for f in Order._meta.concrete_fields)


def admin_orders(
    *,
    status: str | None = None,
    store_id: UUID | None = None,
    customer_id: UUID | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    search: str = "",
) -> QuerySet[Order, dict[str, Any]]:
    """Orders for the back office as rows (dicts) with the customer's email and name.

    Render a page with ``admin_order_rows`` (two more queries: lines, deliveries). Rows rather
    than model instances: a page is read-only, and building 60 instances per page was
    most of the list's time.

    ``search`` is an order number (exact or a prefix, any case) or a customer's email
    (exact, any case). Each filter has an index (see ``Order.Meta.indexes``, the
    ``number`` pattern index Django adds for a unique CharField, and the ``UPPER(email)``
    index on users); the email is resolved in a scalar subquery so PostgreSQL can use
    both indexes in one bitmap OR.
    """
    qs = Order.objects.all()
    if status:
        qs = qs.filter(status=status)
    if store_id:
        qs = qs.filter(store_id=store_id)
    if customer_id:
        qs = qs.filter(customer_id=customer_id)
    if created_after:
        qs = qs.filter(created_at__gte=created_after)
    if created_before:
        qs = qs.filter(created_at__lt=created_before)
    if search:
        by_email = User.objects.filter(email__iexact=search).values("id")[:1]
        qs = qs.filter(Q(number__startswith=search.upper()) | Q(customer_id=Subquery(by_email)))
    return qs.values(
        *_ORDER_COLUMNS,
        customer_email=F("customer__email"),
        customer_name=F("customer__name"),
        picking_json=_picking_lines_annotation(),
    )


def admin_order_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of ``admin_orders`` as the contract's order plus ``customer`` (two queries)."""
    lines: dict[UUID, list[SimpleNamespace]] = defaultdict(list)
    deliveries = current_deliveries_by_order(row["id"] for row in rows)
    if rows:
        for line in (
            OrderLine.objects.filter(order_id__in=[row["id"] for row in rows])
            .order_by("id")
            .values(
                "order_id",
                "product_id",
                "name",
                "quantity",
                "unit_price_cents",
                "line_total_cents",
                "picked_quantity",
                "substitute_for_id",
            )
        ):
            lines[line["order_id"]].append(SimpleNamespace(**line))
    return [
        {
            **_render(
                SimpleNamespace(**row),
                lines[row["id"]],
                row["delivery_address"],
                deliveries.get(row["id"]),
                substitutions_to_dict(parse_picking_json(row["picking_json"])),
            ),
            "customer": {
                "id": str(row["customer_id"]),
                "email": row["customer_email"],
                "name": row["customer_name"],
            },
        }
        for row in rows
    ]


def admin_order(order_id: UUID) -> Order:
    """One order with its lines, current delivery, customer and picking (three queries)."""
    order = orders_with_lines().select_related("customer", "picking").filter(pk=order_id).first()
    if order is None:
        raise NotFound("No such order.")
    return order


def customer_to_dict(user: User) -> dict[str, Any]:
    return {"id": str(user.id), "email": user.email, "name": user.name}


def admin_order_to_dict(order: Order) -> dict[str, Any]:
    """The contract's order plus ``customer: {id, email, name}`` (``customer`` loaded)."""
    return {**order_to_dict(order), "customer": customer_to_dict(order.customer)}


def picking_to_dict(picking: Any, *, with_order: bool = False) -> dict[str, Any]:
    """A picking (the row or the domain object): ``{status, started_at, completed_at}``."""
    body = {
        "status": str(picking.status),
        "started_at": format_timestamp(picking.started_at),
        "completed_at": (format_timestamp(picking.completed_at) if picking.completed_at else None),
    }
    return {"order_id": str(picking.order_id), **body} if with_order else body


def order_events(order_id: UUID) -> list[dict[str, Any]]:
    """The order's outbox rows (its events, published or not), oldest first.

    Events recorded by one change share ``occurred_at`` and ``created_at``; among those,
    published ones follow their stream ids (the order they were published in, which is
    the order they were recorded in), unpublished ones come last.
    """
    rows = OutboxEvent.objects.filter(aggregate_id=order_id).values(
        "event_id", "type", "occurred_at", "published_at", "created_at", "stream_id"
    )
    return [
        {
            "event_id": str(row["event_id"]),
            "type": row["type"],
            "occurred_at": format_timestamp(row["occurred_at"]),
            "published_at": (
                format_timestamp(row["published_at"]) if row["published_at"] else None
            ),
        }
        for row in sorted(rows, key=_event_order)
    ]


def _event_order(row: Mapping[str, Any]) -> tuple[Any, ...]:
    ms, _, seq = str(row["stream_id"] or "").partition("-")
    published = (int(ms), int(seq or 0)) if ms.isdigit() and (seq or "0").isdigit() else None
    return (
        row["occurred_at"],
        row["created_at"],
        published is None,
        published or (0, 0),
        str(row["event_id"]),
    )


def admin_order_detail_to_dict(order: Order) -> dict[str, Any]:
    """Order, customer, history, picking (or null) and events (``admin_order`` loaded it)."""
    picking = getattr(order, "picking", None)  # a missing reverse one-to-one raises
    return {
        **admin_order_to_dict(order),
        "history": admin_order_history(order.id),
        "picking": picking_detail_to_dict(order) if picking is not None else None,
        "events": order_events(order.id),
    }


def picking_detail_to_dict(order: Order, *, with_order: bool = False) -> dict[str, Any]:
    """The order's picking with its ``lines`` (v1.1), from ``admin_order`` (no query)."""
    return {
        **picking_to_dict(order.picking, with_order=with_order),
        "lines": picking_lines_to_dict(order.lines.all(), _picking_rows_of(order)),
    }
