"""What the order socket's handshake reads: who may watch, the snapshot and the missed
changes, in one statement.

The handshake is on every order's hot path (each app opens the socket right after the
201). Through the ORM it cost four queries and about 2.2 ms of CPU (the order, its lines,
its current delivery, its history, plus the access check); this is one hand-written
statement (docs/performance.md, "Sockets at scale"). One statement also reads one
consistent snapshot: the missed changes are exactly those up to the snapshot's version.

The order is rendered by the same ``_render`` as ``order_to_dict`` (tests pin that both
give the same order), so a field added there reaches the snapshot or fails that test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from uuid import UUID

from django.db import connection

from lokaly_core.delivery.selectors import CURRENT, _order_delivery
from lokaly_core.events.contracts import format_timestamp
from lokaly_core.orders.selectors import (
    PICKING_LINES_SQL,
    _render,
    parse_picking_json,
    substitutions_to_dict,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_ORDER_COLUMNS = (
    "id",
    "number",
    "status",
    "status_version",
    "store_id",
    "customer_id",
    "subtotal_cents",
    "delivery_fee_cents",
    "total_cents",
    "currency",
    "delivery_address",
    "note",
    "cancel_reason",
    "created_at",
    "updated_at",
)
_DELIVERY_COLUMNS = (
    "id",
    "status",
    "courier_id",
    "courier_name",
    "assigned_at",
    "picked_up_at",
    "delivered_at",
)

# The current delivery is the latest assigned, picked-up or delivered one (as
# ``current_delivery_prefetch``); occurred_at travels as integer microseconds since the
# epoch, exact (a JSON float would round them).
WATCHED_SQL = f"""
SELECT {", ".join(f"o.{c}" for c in _ORDER_COLUMNS)},
  (SELECT json_agg(json_build_object(
      'product_id', l.product_id, 'name', l.name, 'quantity', l.quantity,
      'unit_price_cents', l.unit_price_cents, 'line_total_cents', l.line_total_cents,
      'picked_quantity', l.picked_quantity, 'substitute_for_id', l.substitute_for_id
    ) ORDER BY l.id)
   FROM core_orderline l WHERE l.order_id = o.id) AS lines,
  {PICKING_LINES_SQL.format(order="o")} AS picking,
  (SELECT json_agg(json_build_object(
      'status', h.status, 'previous_status', h.previous_status,
      'status_version', h.status_version, 'reason', h.reason,
      'occurred_us', (EXTRACT(EPOCH FROM h.occurred_at) * 1000000)::bigint
    ) ORDER BY h.status_version)
   FROM core_orderstatuschange h
   WHERE h.order_id = o.id AND h.status_version > %(since)s) AS missed,
  EXISTS (SELECT 1 FROM core_delivery w
          WHERE w.order_id = o.id AND w.courier_id = %(watcher)s
            AND w.status = ANY(%(current)s)) AS watcher_delivers,
  (SELECT a.role FROM core_user a WHERE a.id = %(account)s AND a.is_active) AS account_role,
  {", ".join(f"d.{c}" for c in _DELIVERY_COLUMNS)}, d.handoff_code
FROM core_order o
LEFT JOIN LATERAL (
  SELECT d.id, d.status, d.courier_id, u.name AS courier_name,
         d.assigned_at, d.picked_up_at, d.delivered_at, d.handoff_code
  FROM core_delivery d JOIN core_user u ON u.id = d.courier_id
  WHERE d.order_id = o.id AND d.status = ANY(%(current)s)
  ORDER BY d.assigned_at DESC LIMIT 1
) d ON true
WHERE o.id = %(order_id)s
"""  # noqa: S608 - column names are ours, values are parameters


@dataclass(frozen=True, slots=True)
class WatchedOrder:
    """The order as its watcher's snapshot shows it, and who may watch it."""

    customer_id: UUID
    watcher_delivers: bool  # the watcher is (or was, once delivered) its courier
    order: dict[str, Any]
    missed: list[dict[str, Any]]  # changes after ``since``, oldest first
    account_role: str | None = None  # the ``account_id``'s role while it is active
    # The current delivery's hand-off code (v1.1): for the customer's snapshot only
    # (``with_handoff_code``), never in ``order``, which the courier may be sent.
    handoff_code: str | None = None


def _json(value: Any) -> Any:
    # Django registers a text loader for jsonb (JSONField decodes it); json arrives parsed.
    return json.loads(value) if isinstance(value, str) else value


def watched_order(
    *,
    order_id: UUID,
    watcher_id: UUID | None,
    since: int | None,
    account_id: UUID | None = None,
) -> WatchedOrder | None:
    """The order with its current delivery, its changes after version ``since`` (none
    when ``since`` is None), whether ``watcher_id`` delivers it and, for ``account_id``,
    that account's role while it is active (the socket's account check, in the same
    statement); None when there is no such order. One query.

    On Django's connection; the socket's handshake runs ``WATCHED_SQL`` in its event loop
    instead (``lokaly_public.db_async``) and reads the row with ``watched_from_row``."""
    with connection.cursor() as cursor:
        cursor.execute(
            WATCHED_SQL,
            watched_params(
                order_id=order_id, watcher_id=watcher_id, since=since, account_id=account_id
            ),
        )
        return watched_from_row(cursor.fetchone())


def watched_params(
    *, order_id: UUID, watcher_id: UUID | None, since: int | None, account_id: UUID | None
) -> dict[str, Any]:
    """``WATCHED_SQL``'s parameters (see ``watched_order``)."""
    return {
        "order_id": order_id,
        "watcher": watcher_id,
        "since": since,
        "current": CURRENT,
        "account": account_id,
    }


def watched_from_row(row: tuple[Any, ...] | None) -> WatchedOrder | None:
    """``WATCHED_SQL``'s row (with Django's loaders: jsonb as text) as a ``WatchedOrder``."""
    if row is None:
        return None
    n = len(_ORDER_COLUMNS)
    fields = dict(zip(_ORDER_COLUMNS, row[:n], strict=True))
    fields["delivery_address"] = _json(fields["delivery_address"])
    lines, picking = _json(row[n]) or [], parse_picking_json(row[n + 1])
    missed, watcher_delivers = _json(row[n + 2]) or [], row[n + 3]
    account_role = row[n + 4]
    width = len(_DELIVERY_COLUMNS)
    delivery = dict(zip(_DELIVERY_COLUMNS, row[n + 5 : n + 5 + width], strict=True))
    order = _render(
        SimpleNamespace(**fields),
        [SimpleNamespace(**line) for line in lines],
        fields["delivery_address"],
        _order_delivery(delivery) if delivery["id"] is not None else None,
        substitutions_to_dict(picking),
    )
    return WatchedOrder(
        customer_id=fields["customer_id"],
        watcher_delivers=bool(watcher_delivers),
        order=order,
        missed=[_change(c) for c in missed],
        account_role=account_role,
        handoff_code=row[n + 5 + width],
    )


def _change(row: dict[str, Any]) -> dict[str, Any]:
    """As ``change_to_dict`` renders a status change."""
    occurred_at = _EPOCH + timedelta(microseconds=row["occurred_us"])
    return {
        "status": row["status"],
        "previous_status": row["previous_status"],
        "status_version": row["status_version"],
        "occurred_at": format_timestamp(occurred_at),
        "reason": row["reason"],
    }
