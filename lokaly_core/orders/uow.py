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
]


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
        self.deliveries = OrmDeliveries()
        self.couriers = OrmCouriers()
        self.dispatch = OrmDispatchQueue()
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
