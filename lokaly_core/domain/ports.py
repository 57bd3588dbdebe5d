"""Ports: what the domain services need from storage, the event bus and the clock.

The Django side implements them in ``lokaly_core.orders.uow``; the domain tests use
in-memory fakes. A unit of work is a context manager: leaving it by an exception rolls
everything back, events included (they live in the same transaction, an outbox).

Every service path that returns calls ``commit()``, also when it changed nothing (a no-op
commit): a unit of work may be joined to a transaction its caller owns (the worker's
handler transaction, which also holds the event's dedup markers and sibling handlers'
effects), and a unit left without ``commit()`` cannot roll back only its own part of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self
from uuid import UUID

from lokaly_core.domain.model.catalog import Offer, StoreInfo
from lokaly_core.domain.model.delivery import Candidate, Delivery
from lokaly_core.domain.model.inventory import StockLevel
from lokaly_core.domain.model.orders import Order
from lokaly_core.domain.model.picking import Picking, PickingLine
from lokaly_core.events import EventPayload

Clock = Callable[[], datetime]


class CatalogReader(Protocol):
    def get_store_offers(
        self, store_id: UUID, product_ids: Sequence[UUID], *, customer_id: UUID | None = None
    ) -> tuple[StoreInfo | None, dict[UUID, Offer]]:
        """The store (its hours and area, and ``customer_open_orders`` of ``customer_id``),
        and its offers among ``product_ids`` (products it does not carry are absent), in
        one read."""
        ...


class OrderRepository(Protocol):
    def next_number(self) -> str: ...

    def add(self, order: Order) -> None: ...

    def get_for_update(self, order_id: UUID) -> Order | None:
        """Load and lock the order row until the unit of work ends."""
        ...

    def save(self, order: Order) -> None:
        """Persist status fields and the order's ``pending_changes`` (its history)."""
        ...

    def get_many_for_update(self, order_ids: Sequence[UUID]) -> dict[UUID, Order]:
        """Load and lock the orders that exist, in id order (so that concurrent batches
        never deadlock on them), until the unit of work ends."""
        ...

    def save_many(self, orders: Sequence[Order]) -> None:
        """``save`` for several orders at once."""
        ...

    def amend(self, order: Order) -> None:
        """Persist the picking's amendment (v1.1): the lines' ``picked_quantity`` and
        totals, the added substitute lines, the order's totals; then as ``save``."""
        ...


class StockRepository(Protocol):
    def try_reserve(self, store_id: UUID, lines: Sequence[tuple[UUID, int]]) -> list[UUID]:
        """Reserve every line or none. Returns the product ids that fell short (empty: done)."""
        ...

    def lock_available(
        self, items: Sequence[tuple[UUID, UUID]]
    ) -> dict[tuple[UUID, UUID], int]:
        """Lock the (store, product) stock rows in that order and return what each has
        available (``on_hand - reserved``); rows that do not exist are absent."""
        ...

    def reserve_many(self, rows: Sequence[tuple[UUID, UUID, int]]) -> None:
        """Add (store, product, quantity) to ``reserved``, rows locked by ``lock_available``."""
        ...

    def release(self, store_id: UUID, lines: Sequence[tuple[UUID, int]]) -> None: ...

    def consume(self, store_id: UUID, lines: Sequence[tuple[UUID, int]]) -> None:
        """The reserved units leave the store: ``on_hand`` and ``reserved`` both drop."""
        ...

    def get_level_for_update(self, store_id: UUID, product_id: UUID) -> StockLevel | None:
        """Load and lock one stock row until the unit of work ends."""
        ...

    def create_level(self, store_id: UUID, product_id: UUID) -> StockLevel | None:
        """Start carrying a product (0 on hand), locked; None if store or product is unknown."""
        ...

    def record_adjustment(
        self, level: StockLevel, *, delta: int, reason: str, actor_id: UUID | None
    ) -> None:
        """Write ``level.on_hand`` and an adjustment row to the ledger."""
        ...


class PickingRepository(Protocol):
    def get(self, order_id: UUID) -> Picking | None: ...

    def add(self, picking: Picking) -> None: ...

    def save(self, picking: Picking) -> None: ...

    def lines(self, order_id: UUID) -> list[PickingLine]:
        """The order's recorded picking lines (v1.1); callers hold the order's lock."""
        ...

    def save_line(self, line: PickingLine) -> None:
        """Insert or replace the line of (order, product)."""
        ...

    def due_proposals(self, now: datetime, limit: int) -> list[tuple[UUID, UUID]]:
        """(order_id, product_id) of open substitute proposals past their expiry, oldest
        first, at most ``limit``; unlocked (lock the order, then look again)."""
        ...


class DeliveryRepository(Protocol):
    def get(self, delivery_id: UUID) -> Delivery | None: ...

    def get_for_update(self, delivery_id: UUID) -> Delivery | None: ...

    def active_for_order(self, order_id: UUID) -> Delivery | None:
        """The order's assigned or picked-up delivery (callers hold the order's lock)."""
        ...

    def active_for_courier(self, courier_id: UUID) -> Delivery | None:
        """The courier's assigned or picked-up delivery (unlocked: lock its order, then
        the delivery, and check again)."""
        ...

    def add(self, delivery: Delivery) -> None: ...

    def save(self, delivery: Delivery) -> None: ...

    def store_location(self, store_id: UUID) -> tuple[float, float]: ...

    def store_requires_handoff_code(self, store_id: UUID) -> bool:
        """Whether the store's deliveries need the customer's hand-off code (v1.1)."""
        ...


class CourierRepository(Protocol):
    def free_candidates(self, order_id: UUID) -> list[Candidate]:
        """Online, active couriers with no active delivery (not locked), each flagged when
        they declined ``order_id`` before, with the time of their last such decline."""
        ...

    def try_claim(self, courier_id: UUID) -> bool:
        """Lock the courier unless another transaction holds them; True when they are
        (still) online, active and free. The lock lasts until the unit of work ends."""
        ...

    def set_current_delivery(
        self, courier_id: UUID, delivery_id: UUID | None, *, at: datetime
    ) -> None:
        """Busy with ``delivery_id``, or free again (None) and waiting since ``at``."""
        ...

    def set_online(self, courier_id: UUID, online: bool, *, at: datetime) -> tuple[bool, bool]:
        """Set the shift; returns (was online before, has an active delivery)."""
        ...


class DispatchQueue(Protocol):
    """Orders waiting for a free courier."""

    def attempts(self, order_id: UUID) -> int: ...

    def put(self, order_id: UUID, attempts: int, next_attempt_at: datetime) -> None: ...

    def remove(self, order_id: UUID) -> None: ...


class EventRecorder(Protocol):
    def record(self, event: EventPayload, *, aggregate_id: UUID, occurred_at: datetime) -> None:
        """Write the event in the current transaction (published once it commits)."""
        ...


class UnitOfWork(Protocol):
    # Read-only members: a plain attribute in a Protocol is settable, so mypy would require
    # an implementation to declare it with exactly the port's type; a property lets
    # DjangoUnitOfWork and the test fakes hold their own repository classes.
    @property
    def catalog(self) -> CatalogReader: ...

    @property
    def orders(self) -> OrderRepository: ...

    @property
    def stock(self) -> StockRepository: ...

    @property
    def picking(self) -> PickingRepository: ...

    @property
    def deliveries(self) -> DeliveryRepository: ...

    @property
    def couriers(self) -> CourierRepository: ...

    @property
    def dispatch(self) -> DispatchQueue: ...

    @property
    def events(self) -> EventRecorder: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def commit(self) -> None: ...
