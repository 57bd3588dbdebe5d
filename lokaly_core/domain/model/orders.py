"""Orders: the status machine, pricing and the values an order is made of."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from lokaly_core.domain.errors import InvalidTransition


class OrderStatus(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    PICKING = "picking"
    READY = "ready"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


class StockState(StrEnum):
    """What the order holds in the store's stock."""

    NONE = "none"
    RESERVED = "reserved"
    RELEASED = "released"
    CONSUMED = "consumed"


class Actor(StrEnum):
    CUSTOMER = "customer"
    ADMIN = "admin"
    COURIER = "courier"
    SYSTEM = "system"


S = OrderStatus
# (from, to) -> who may make the move. SYSTEM moves follow events in the worker; the
# courier's moves happen with the delivery's pickup and drop-off (domain/delivery.py).
TRANSITIONS: dict[tuple[OrderStatus, OrderStatus], frozenset[Actor]] = {
    (S.PENDING, S.CONFIRMED): frozenset({Actor.SYSTEM}),
    (S.CONFIRMED, S.PICKING): frozenset({Actor.SYSTEM, Actor.ADMIN}),
    (S.PICKING, S.READY): frozenset({Actor.SYSTEM, Actor.ADMIN}),
    (S.READY, S.OUT_FOR_DELIVERY): frozenset({Actor.COURIER, Actor.SYSTEM}),
    # ADMIN: staff complete a delivery the courier could not (a locked hand-off code).
    (S.OUT_FOR_DELIVERY, S.DELIVERED): frozenset({Actor.COURIER, Actor.SYSTEM, Actor.ADMIN}),
    (S.PENDING, S.CANCELLED): frozenset({Actor.CUSTOMER, Actor.ADMIN, Actor.SYSTEM}),
    (S.CONFIRMED, S.CANCELLED): frozenset({Actor.CUSTOMER, Actor.ADMIN, Actor.SYSTEM}),
    (S.PICKING, S.CANCELLED): frozenset({Actor.ADMIN}),
    (S.READY, S.CANCELLED): frozenset({Actor.ADMIN}),
}

MAX_ITEMS = 50
MAX_QUANTITY = 99
MAX_NOTE_LENGTH = 500
OUT_OF_STOCK = "out_of_stock"


def can_transition(current: OrderStatus, target: OrderStatus, actor: Actor) -> bool:
    return actor in TRANSITIONS.get((current, target), frozenset())


def ensure_transition(current: OrderStatus, target: OrderStatus, actor: Actor) -> None:
    if not can_transition(current, target, actor):
        raise InvalidTransition(
            f"An order that is {current} cannot become {target}.",
            details={"status": str(current), "requested": str(target)},
        )


@dataclass(frozen=True, slots=True)
class Address:
    line1: str
    city: str
    postal_code: str
    lat: float
    lng: float
    line2: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "line1": self.line1,
            "line2": self.line2,
            "city": self.city,
            "postal_code": self.postal_code,
            "lat": self.lat,
            "lng": self.lng,
        }


@dataclass(frozen=True, slots=True)
class Line:
    product_id: UUID
    name: str
    quantity: int
    unit_price_cents: int
    # v1.1: set when the picking amended the order (None: never amended, the v1 line);
    # a substitute line also names the ordered product it replaces.
    picked_quantity: int | None = None
    substitute_for: UUID | None = None

    @property
    def delivered_quantity(self) -> int:
        """What the customer gets (and pays for): the picked quantity once amended."""
        return self.quantity if self.picked_quantity is None else self.picked_quantity

    @property
    def line_total_cents(self) -> int:
        return self.delivered_quantity * self.unit_price_cents


@dataclass(frozen=True, slots=True)
class StatusChange:
    status: OrderStatus
    previous_status: OrderStatus | None
    status_version: int
    occurred_at: datetime
    reason: str | None
    # The staff account that made the change, when one did (audited in the history).
    actor_id: UUID | None = None


@dataclass(slots=True)
class Order:
    id: UUID
    number: str
    customer_id: UUID
    store_id: UUID
    status: OrderStatus
    status_version: int
    lines: list[Line]
    delivery_fee_cents: int
    currency: str
    delivery_address: Address
    note: str
    created_at: datetime
    updated_at: datetime
    cancel_reason: str | None = None
    stock_state: StockState = StockState.NONE
    # v1.1: (product_id, quantity) of the substitutes proposed or accepted while the
    # picking is not completed: their units are reserved for the order too.
    substitutes_held: list[tuple[UUID, int]] = field(default_factory=list)
    pending_changes: list[StatusChange] = field(default_factory=list, repr=False)

    @property
    def subtotal_cents(self) -> int:
        return sum(line.line_total_cents for line in self.lines)

    @property
    def total_cents(self) -> int:
        return self.subtotal_cents + self.delivery_fee_cents

    @property
    def amended(self) -> bool:
        return any(line.picked_quantity is not None for line in self.lines)

    def stock_lines(self) -> list[tuple[UUID, int]]:
        """What the order holds reserved, as (product_id, quantity) in product id order:
        the order in which stock rows are locked, so that two orders never wait on each
        other's rows. That is what a cancellation releases and the pickup consumes:
        every line at its ordered quantity (at its picked quantity once amended; a line
        picked 0 holds nothing), plus the substitutes held during the picking."""
        held: dict[UUID, int] = {}
        for product_id, quantity in (
            *((line.product_id, line.delivered_quantity) for line in self.lines),
            *self.substitutes_held,
        ):
            if quantity > 0:
                held[product_id] = held.get(product_id, 0) + quantity
        return sorted(held.items(), key=lambda p: str(p[0]))

    def move_to(
        self,
        target: OrderStatus,
        *,
        actor: Actor,
        at: datetime,
        reason: str | None = None,
        actor_id: UUID | None = None,
    ) -> StatusChange:
        """Apply one state-machine step, recording it for the repository to persist."""
        ensure_transition(self.status, target, actor)
        change = StatusChange(
            status=target,
            previous_status=self.status,
            status_version=self.status_version + 1,
            occurred_at=at,
            reason=reason,
            actor_id=actor_id,
        )
        self.status = target
        self.status_version = change.status_version
        self.updated_at = at
        if target is OrderStatus.CANCELLED:
            self.cancel_reason = reason
        self.pending_changes.append(change)
        return change
