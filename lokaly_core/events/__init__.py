"""Event contracts: the envelope and one frozen, versioned payload type per event.

Plain Python only (checked by import-linter), so every process and every future
transport (Redis Streams today) shares the same definitions.
"""

from lokaly_core.events.contracts import (
    EVENT_TYPES,
    AmendedLine,
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
    OrderAmended,
    OrderCancelled,
    OrderCreated,
    OrderStatusChanged,
    OrderSubstitutionAnswered,
    OrderSubstitutionProposed,
    PickingCompleted,
    PickingStarted,
    StockLine,
    UnknownEventType,
)

__all__ = [
    "EVENT_TYPES",
    "AmendedLine",
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
    "OrderAmended",
    "OrderCreated",
    "OrderStatusChanged",
    "OrderSubstitutionAnswered",
    "OrderSubstitutionProposed",
    "PickingCompleted",
    "PickingStarted",
    "StockLine",
    "UnknownEventType",
]
