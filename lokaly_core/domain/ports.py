"""Ports: what the domain services need from storage, the event bus and the clock.

The Django side implements them in ``lokaly_core.orders.uow``; the domain tests use
in-memory fakes. A unit of work is a context manager: leaving it without ``commit()``
rolls everything back, events included (they live in the same transaction, an outbox).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self
from uuid import UUID

from lokaly_core.domain.orders import Order
from lokaly_core.events import EventPayload

if TYPE_CHECKING:
    from lokaly_core.domain.delivery import Candidate, Delivery
    from lokaly_core.domain.inventory import StockLevel
    from lokaly_core.domain.picking import Picking

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class StoreInfo:
    id: UUID
    is_active: bool


@dataclass(frozen=True, slots=True)
class Offer:
    """A product as a given store sells it."""

    product_id: UUID
    name: str
    price_cents: int
    currency: str
    is_active: bool


class CatalogReader(Protocol):
    def get_store_offers(
        self, store_id: UUID, product_ids: Sequence[UUID]
    ) -> tuple[StoreInfo | None, dict[UUID, Offer]]:
        """The store, and its offers among ``product_ids`` (products it does not carry are
        absent), in one read."""
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


class StockRepository(Protocol):
    def try_reserve(self, store_id: UUID, lines: Sequence[tuple[UUID, int]]) -> list[UUID]:
        """Reserve every line or none. Returns the product ids that fell short (empty: done)."""
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


class DeliveryRepository(Protocol):
    def get(self, delivery_id: UUID) -> Delivery | None: ...

    def get_for_update(self, delivery_id: UUID) -> Delivery | None: ...

    def active_for_order(self, order_id: UUID) -> Delivery | None:
        """The order's assigned or picked-up delivery (callers hold the order's lock)."""
        ...

    def add(self, delivery: Delivery) -> None: ...

    def save(self, delivery: Delivery) -> None: ...

    def store_location(self, store_id: UUID) -> tuple[float, float]: ...


class CourierRepository(Protocol):
    def free_candidates(self, order_id: UUID) -> list[Candidate]:
        """Online, active couriers with no active delivery (not locked), each flagged when
        they declined ``order_id`` before."""
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
    catalog: CatalogReader
    orders: OrderRepository
    stock: StockRepository
    picking: PickingRepository
    deliveries: DeliveryRepository
    couriers: CourierRepository
    dispatch: DispatchQueue
    events: EventRecorder

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def commit(self) -> None: ...


def stock_lines(order: Order) -> list[tuple[UUID, int]]:
    """The order's lines as (product_id, quantity), in product id order to avoid deadlocks."""
    return sorted(((line.product_id, line.quantity) for line in order.lines), key=_first)


def _first(pair: tuple[UUID, int]) -> str:
    return str(pair[0])
