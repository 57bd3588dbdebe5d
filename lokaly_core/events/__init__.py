"""Event contracts: the envelope and one frozen, versioned payload type per event.

Plain Python only (checked by import-linter), so every process and every future
transport (Redis Streams today) shares the same definitions.
"""

from lokaly_core.events.contracts import (
    EVENT_TYPES,
    CourierAvailable,
    DeliveryAssigned,
    DeliveryCompleted,
    DeliveryCompletedByAdmin,
    DeliveryDeclined,
    DeliveryPickedUp,
    Envelope,
    EventPayload,
    InventoryReleased,
    InventoryReserved,
    OrderCancelled,
    OrderCreated,
    OrderStatusChanged,
    PickingCompleted,
    PickingStarted,
    StockLine,
    UnknownEventType,
)

__all__ = [
    "EVENT_TYPES",
    "CourierAvailable",
    "DeliveryAssigned",
    "DeliveryCompleted",
    "DeliveryCompletedByAdmin",
    "DeliveryDeclined",
    "DeliveryPickedUp",
    "Envelope",
    "EventPayload",
    "InventoryReleased",
    "InventoryReserved",
    "OrderCancelled",
    "OrderCreated",
    "OrderStatusChanged",
    "PickingCompleted",
    "PickingStarted",
    "StockLine",
    "UnknownEventType",
]
