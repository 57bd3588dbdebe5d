"""The Django implementation of the domain's unit of work (``lokaly_core.domain.ports``).

The repositories live with their areas (``catalog``, ``orders``, ``inventory``,
``picking``, ``delivery``, ``outbox``); this module ties them to one database transaction.
"""

from __future__ import annotations

import functools
from types import TracebackType
from typing import Self

from django.db import transaction

from lokaly_core.catalog.repositories import OrmCatalog
from lokaly_core.delivery.repositories import OrmCouriers, OrmDeliveries, OrmDispatchQueue
from lokaly_core.events import Envelope
from lokaly_core.inventory.repositories import OrmStock
from lokaly_core.orders.repositories import OrmOrders
from lokaly_core.outbox.recorder import OutboxRecorder
from lokaly_core.outbox.relay import publish_after_commit
from lokaly_core.picking.repositories import OrmPicking

__all__ = [
    "DjangoUnitOfWork",
    "OrmCatalog",
    "OrmCouriers",
    "OrmDeliveries",
    "OrmDispatchQueue",
    "OrmOrders",
    "OrmPicking",
    "OrmStock",
    "OutboxRecorder",
    "UncommittedUnitOfWork",
]


class UncommittedUnitOfWork(RuntimeError):
    """A joined unit of work was misused (see ``DjangoUnitOfWork``)."""


class DjangoUnitOfWork:
    """One database transaction (a savepoint when nested); events publish after the
    outermost commit.

    ``savepoint=False`` joins a transaction the caller owns, without a savepoint, for
    callers that roll back as a whole when the service raises (the worker's handler
    transaction, which also holds the event's dedup markers and the effects of the
    event's other handlers): two round trips fewer. Such a unit cannot roll back only its
    own part, so leaving it without ``commit()`` and without an exception is a
    programming error and raises ``UncommittedUnitOfWork`` (a service that finds nothing
    to do commits nothing); it never marks the caller's transaction for rollback
    silently.
    """

    def __init__(self, *, savepoint: bool = True) -> None:
        self.savepoint = savepoint
        self.catalog = OrmCatalog()
        self.orders = OrmOrders()
        self.stock = OrmStock()
        self.picking = OrmPicking()
        self.deliveries = OrmDeliveries()
        self.couriers = OrmCouriers()
        self.dispatch = OrmDispatchQueue()
        self.events = OutboxRecorder()
        self.published: list[Envelope] = []

    def __enter__(self) -> Self:
        if not self.savepoint and not transaction.get_connection().in_atomic_block:
            raise UncommittedUnitOfWork(
                "a unit of work with savepoint=False joins its caller's transaction; "
                "none is open"
            )
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
            if not self.savepoint:
                self.events.pending.clear()
                self._atomic.__exit__(None, None, None)
                raise UncommittedUnitOfWork(
                    "a unit of work joined to its caller's transaction was left without "
                    "commit(); its changes cannot be rolled back alone"
                )
            transaction.set_rollback(True)  # rolls back this unit's savepoint only
        self._atomic.__exit__(exc_type, exc, tb)
