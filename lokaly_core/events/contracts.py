"""The envelope every event travels in and the payload of each event type.

Envelope (contract, "Events"):
``{event_id, type, schema_version, occurred_at, aggregate_id, payload}``.
Payloads carry ids and values, never model instances. A payload change that is not
backwards compatible gets a new ``SCHEMA_VERSION``.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Self, TypeVar


class UnknownEventType(ValueError):
    pass


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, tuple | list):
        return [_to_jsonable(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def format_timestamp(value: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, as the contract writes timestamps."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_timestamp(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True, slots=True)
class StockLine:
    product_id: uuid.UUID
    quantity: int

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StockLine:
        return cls(product_id=uuid.UUID(str(data["product_id"])), quantity=int(data["quantity"]))


P = TypeVar("P", bound="EventPayload")


@dataclass(frozen=True, slots=True)
class EventPayload:
    TYPE: ClassVar[str] = ""
    SCHEMA_VERSION: ClassVar[int] = 1

    def to_dict(self) -> dict[str, Any]:
        return _to_jsonable(self)  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in data:
                continue
            kwargs[f.name] = _coerce(f.type, data[f.name])
        return cls(**kwargs)


def _coerce(type_name: Any, value: Any) -> Any:
    """Turn JSON values back into the field's declared type (annotations are strings)."""
    if value is None:
        return None
    name = str(type_name)
    if name.startswith("uuid.UUID"):
        return uuid.UUID(str(value))
    if name.startswith("datetime"):
        return parse_timestamp(value)
    if name.startswith("tuple[StockLine"):
        return tuple(StockLine.from_dict(v) for v in value)
    if name.startswith("tuple[AmendedLine"):
        return tuple(AmendedLine.from_dict(v) for v in value)
    return value


@dataclass(frozen=True, slots=True)
class AmendedLine:
    """One line the picking changed (``order.amended``): an ordered product picked short
    (``picked_quantity`` < ``quantity``), or a substitute added (``substitute_for``)."""

    product_id: uuid.UUID
    name: str
    quantity: int
    picked_quantity: int
    unit_price_cents: int
    substitute_for: uuid.UUID | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AmendedLine:
        replaced = data.get("substitute_for")
        return cls(
            product_id=uuid.UUID(str(data["product_id"])),
            name=str(data["name"]),
            quantity=int(data["quantity"]),
            picked_quantity=int(data["picked_quantity"]),
            unit_price_cents=int(data["unit_price_cents"]),
            substitute_for=uuid.UUID(str(replaced)) if replaced is not None else None,
        )


@dataclass(frozen=True, slots=True)
class OrderCreated(EventPayload):
    TYPE: ClassVar[str] = "order.created"
    order_id: uuid.UUID
    number: str
    customer_id: uuid.UUID
    store_id: uuid.UUID
    lines: tuple[StockLine, ...]
    total_cents: int
    currency: str


@dataclass(frozen=True, slots=True)
class OrderStatusChanged(EventPayload):
    TYPE: ClassVar[str] = "order.status_changed"
    order_id: uuid.UUID
    customer_id: uuid.UUID
    status: str
    previous_status: str | None
    status_version: int
    occurred_at: datetime
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class OrderCancelled(EventPayload):
    TYPE: ClassVar[str] = "order.cancelled"
    order_id: uuid.UUID
    reason: str
    cancelled_by: str
    previous_status: str


@dataclass(frozen=True, slots=True)
class InventoryReserved(EventPayload):
    TYPE: ClassVar[str] = "inventory.reserved"
    order_id: uuid.UUID
    store_id: uuid.UUID
    lines: tuple[StockLine, ...]


@dataclass(frozen=True, slots=True)
class InventoryReleased(EventPayload):
    TYPE: ClassVar[str] = "inventory.released"
    order_id: uuid.UUID
    store_id: uuid.UUID
    lines: tuple[StockLine, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class PickingStarted(EventPayload):
    TYPE: ClassVar[str] = "picking.started"
    order_id: uuid.UUID
    store_id: uuid.UUID
    staff_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class PickingCompleted(EventPayload):
    """``amended`` (v1.1, backwards compatible: absent means false): the completion
    amended the order (``order.amended`` was recorded just before this event)."""

    TYPE: ClassVar[str] = "picking.completed"
    order_id: uuid.UUID
    store_id: uuid.UUID
    staff_id: uuid.UUID | None = None
    amended: bool = False


@dataclass(frozen=True, slots=True)
class OrderSubstitutionProposed(EventPayload):
    """v1.1: staff propose ``quantity`` of a substitute for the missing units of
    ``product_id`` (its units are reserved); the customer answers by ``expires_at``.
    ``timezone`` is the store's (IANA name), for telling the customer the time."""

    TYPE: ClassVar[str] = "order.substitution_proposed"
    order_id: uuid.UUID
    customer_id: uuid.UUID
    store_id: uuid.UUID
    product_id: uuid.UUID
    product_name: str
    substitute_product_id: uuid.UUID
    substitute_name: str
    quantity: int
    unit_price_cents: int
    expires_at: datetime
    timezone: str = "UTC"
    staff_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class OrderSubstitutionAnswered(EventPayload):
    """v1.1: a proposal ended: ``status`` ``accepted`` or ``rejected`` by the customer,
    or ``expired`` (unanswered by its expiry, or its order ended first; the same as
    rejected). Units of a rejected or expired substitute were released
    (``released_quantity``; 0 when the order no longer held them)."""

    TYPE: ClassVar[str] = "order.substitution_answered"
    order_id: uuid.UUID
    customer_id: uuid.UUID
    product_id: uuid.UUID
    substitute_product_id: uuid.UUID
    accepted: bool
    status: str
    released_quantity: int = 0


@dataclass(frozen=True, slots=True)
class OrderAmended(EventPayload):
    """v1.1: the picking's completion changed what the order delivers: ``lines`` are the
    changed ones (short picks, substitutes added); totals before and after."""

    TYPE: ClassVar[str] = "order.amended"
    order_id: uuid.UUID
    customer_id: uuid.UUID
    previous_total_cents: int
    total_cents: int
    subtotal_cents: int
    currency: str
    lines: tuple[AmendedLine, ...]


@dataclass(frozen=True, slots=True)
class DeliveryAssigned(EventPayload):
    TYPE: ClassVar[str] = "delivery.assigned"
    delivery_id: uuid.UUID
    order_id: uuid.UUID
    courier_id: uuid.UUID
    customer_id: uuid.UUID | None = None
    store_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class DeliveryPickedUp(EventPayload):
    TYPE: ClassVar[str] = "delivery.picked_up"
    delivery_id: uuid.UUID
    order_id: uuid.UUID
    courier_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class DeliveryCompleted(EventPayload):
    TYPE: ClassVar[str] = "delivery.completed"
    delivery_id: uuid.UUID
    order_id: uuid.UUID
    courier_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class DeliveryCompletedByAdmin(EventPayload):
    """v1.1 ("Proof of delivery"): staff completed a delivery the courier could not (a
    hand-off code locked after too many wrong tries). Recorded with the same
    ``delivery.completed`` and ``order.status_changed`` as a courier's drop-off, which
    stay as in v1; this one carries the audit: who, why, and the code's state."""

    TYPE: ClassVar[str] = "delivery.completed_by_admin"
    delivery_id: uuid.UUID
    order_id: uuid.UUID
    courier_id: uuid.UUID
    staff_id: uuid.UUID | None
    reason: str
    handoff_locked: bool
    handoff_failed_attempts: int


@dataclass(frozen=True, slots=True)
class DeliveryDeclined(EventPayload):
    """Added to the contract's list: an assignment ended before pickup. ``reason`` (added
    in v1.1, backwards compatible: a payload without it was a decline): ``declined`` by
    the courier, or the courier dropped out, ``courier_offline`` (ended the shift) or
    ``courier_deactivated`` (by staff)."""

    TYPE: ClassVar[str] = "delivery.declined"
    delivery_id: uuid.UUID
    order_id: uuid.UUID
    courier_id: uuid.UUID
    reason: str = "declined"


@dataclass(frozen=True, slots=True)
class CourierAvailable(EventPayload):
    """Added to the contract's list: a courier can take a delivery now (``reason``:
    ``online``, ``delivered``, ``declined``, or ``released`` by a cancelled order)."""

    TYPE: ClassVar[str] = "courier.available"
    courier_id: uuid.UUID
    reason: str
    # The order the courier was freed from (none when they came online).
    order_id: uuid.UUID | None = None


EVENT_TYPES: dict[str, type[EventPayload]] = {
    cls.TYPE: cls
    for cls in (
        OrderCreated,
        OrderStatusChanged,
        OrderCancelled,
        InventoryReserved,
        InventoryReleased,
        PickingStarted,
        PickingCompleted,
        OrderSubstitutionProposed,
        OrderSubstitutionAnswered,
        OrderAmended,
        DeliveryAssigned,
        DeliveryPickedUp,
        DeliveryCompleted,
        DeliveryCompletedByAdmin,
        DeliveryDeclined,
        CourierAvailable,
    )
}


@dataclass(frozen=True, slots=True)
class Envelope:
    event_id: uuid.UUID
    type: str
    schema_version: int
    occurred_at: datetime
    aggregate_id: uuid.UUID
    payload: dict[str, Any]

    @classmethod
    def wrap(
        cls,
        event: EventPayload,
        *,
        aggregate_id: uuid.UUID,
        occurred_at: datetime,
        event_id: uuid.UUID | None = None,
    ) -> Envelope:
        return cls(
            event_id=event_id or uuid.uuid4(),
            type=event.TYPE,
            schema_version=event.SCHEMA_VERSION,
            occurred_at=occurred_at,
            aggregate_id=aggregate_id,
            payload=event.to_dict(),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": str(self.event_id),
            "type": self.type,
            "schema_version": self.schema_version,
            "occurred_at": format_timestamp(self.occurred_at),
            "aggregate_id": str(self.aggregate_id),
            "payload": self.payload,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Envelope:
        return cls(
            event_id=uuid.UUID(str(data["event_id"])),
            type=str(data["type"]),
            schema_version=int(data["schema_version"]),
            occurred_at=parse_timestamp(str(data["occurred_at"])),
            aggregate_id=uuid.UUID(str(data["aggregate_id"])),
            payload=dict(data["payload"]),
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> Envelope:
        return cls.from_dict(json.loads(raw))

    def parse(self) -> EventPayload:
        """The typed payload; raises ``UnknownEventType`` for a type this code does not know."""
        try:
            payload_cls = EVENT_TYPES[self.type]
        except KeyError:
            raise UnknownEventType(self.type) from None
        return payload_cls.from_dict(self.payload)
