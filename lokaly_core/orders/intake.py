"""Order intake's unit of work: everything ``place_order`` writes, in one statement.

The order, its lines, its first history row, its ``order.created`` outbox row and, with
an ``Idempotency-Key``, the key with the response to replay are one ``INSERT`` with
data-modifying CTEs, sent at ``commit()``. One statement is atomic on its own, so outside
a caller's transaction there is no BEGIN and no COMMIT either: the outbox guarantee (the
event is written with the change it reports, or neither is) holds as it does in
``DjangoUnitOfWork``, in a quarter of the round trips (docs/performance.md, "Lean intake").

The key row is inserted ``ON CONFLICT DO NOTHING`` and every other row only if it was: a
concurrent request with the same key waits on the unique index until the first one's
statement is done, then writes nothing and raises ``KeyTaken`` (the caller replays the
stored response). Reads run before, as the domain asks for them: the store with its
offers and the order number in one statement (``NumberingCatalog``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self
from uuid import UUID

from django.db import connection, transaction
from psycopg.types.json import Jsonb

from lokaly_core.catalog.repositories import NumberingCatalog
from lokaly_core.delivery.repositories import OrmCouriers, OrmDeliveries, OrmDispatchQueue
from lokaly_core.domain.model import orders as d
from lokaly_core.events import Envelope
from lokaly_core.inventory.repositories import OrmStock
from lokaly_core.orders.models import IdempotencyKey
from lokaly_core.orders.repositories import OrmOrders, order_inserts, order_number
from lokaly_core.outbox.recorder import OutboxRecorder, outbox_insert
from lokaly_core.outbox.relay import publish_after_commit
from lokaly_core.picking.repositories import OrmPicking
from lokaly_core.sql import SqlParams

_CLAIM_SQL = (
    f"INSERT INTO {IdempotencyKey._meta.db_table} "  # noqa: S608 - the table name is ours
    "(customer_id, key, request_hash, response_status, response_body, created_at) "
    "VALUES (%s, %s, %s, %s, %s, now()) ON CONFLICT (customer_id, key) DO NOTHING RETURNING id"
)


@dataclass(frozen=True, slots=True)
class IdempotencyClaim:
    """Store ``respond(order)`` under (customer, key) with the order, unless taken."""

    customer_id: UUID
    key: str
    fingerprint: str
    respond: Callable[[d.Order], tuple[int, dict[str, Any]]]


class KeyTaken(Exception):
    """A concurrent request with the same key was stored first; nothing was written."""


class _DeferredOrders(OrmOrders):
    """``add`` keeps the new order for the unit of work's single statement;
    ``next_number`` takes the number the catalog read drew."""

    def __init__(self, catalog: NumberingCatalog) -> None:
        self.added: list[d.Order] = []
        self.catalog = catalog

    def next_number(self) -> str:
        drawn, self.catalog.drawn = self.catalog.drawn, None
        return super().next_number() if drawn is None else order_number(drawn)

    def add(self, order: d.Order) -> None:
        self.added.append(order)


class IntakeUnitOfWork:
    """The unit of work of ``place_order`` (only it: the other services read and lock
    before they write, which this one does not support). Nothing is written before
    ``commit()``, so leaving by an exception leaves nothing behind."""

    def __init__(self, *, claim: IdempotencyClaim | None = None) -> None:
        self.claim = claim
        self.catalog = NumberingCatalog()
        self.orders = _DeferredOrders(self.catalog)
        self.events = OutboxRecorder()
        # The port's other repositories, unused by intake.
        self.stock = OrmStock()
        self.picking = OrmPicking()
        self.deliveries = OrmDeliveries()
        self.couriers = OrmCouriers()
        self.dispatch = OrmDispatchQueue()
        self.published: list[Envelope] = []
        self.response: tuple[int, dict[str, Any]] | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.orders.added.clear()
        self.events.pending.clear()

    def commit(self) -> None:
        orders, self.orders.added = self.orders.added, []
        envelopes, self.events.pending = self.events.pending, []
        parts = [insert for order in orders for insert in order_inserts(order)]
        if envelopes:
            parts.append(outbox_insert(envelopes))
        if parts:
            if self.claim is None:
                sql, params = _one_statement(parts)
            else:
                (order,) = orders  # a key stores the response of the one order placed
                self.response = self.claim.respond(order)
                sql, params = _claimed_statement(self.claim, self.response, parts)
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                if cursor.fetchone() is None:
                    raise KeyTaken
        if envelopes:
            # At once outside a transaction; after the caller's commit inside one.
            transaction.on_commit(functools.partial(publish_after_commit, envelopes))
        self.published.extend(envelopes)


def _one_statement(parts: list[tuple[str, SqlParams]]) -> tuple[str, SqlParams]:
    ctes = ", ".join(f"w{i} AS ({sql})" for i, (sql, _) in enumerate(parts))
    return f"WITH {ctes} SELECT 1", [p for _, params in parts for p in params]


def _claimed_statement(
    claim: IdempotencyClaim,
    response: tuple[int, dict[str, Any]],
    parts: list[tuple[str, SqlParams]],
) -> tuple[str, SqlParams]:
    """Every part only if the key row was inserted; the statement returns its id, or no
    row when the key was taken."""
    status, body = response
    params: SqlParams = [claim.customer_id, claim.key, claim.fingerprint, status, Jsonb(body)]
    ctes = [f"k AS ({_CLAIM_SQL})"]
    for i, (sql, part_params) in enumerate(parts):
        into, _, values = sql.partition(" VALUES ")
        ctes.append(
            f"w{i} AS ({into} SELECT * FROM (VALUES {values}) AS v "  # noqa: S608 - ours
            "WHERE EXISTS (SELECT FROM k))"
        )
        params.extend(part_params)
    return f"WITH {', '.join(ctes)} SELECT id FROM k", params  # noqa: S608 - ours
