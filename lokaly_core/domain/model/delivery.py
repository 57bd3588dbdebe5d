"""A delivery (one courier taking one order) and a free courier as dispatch sees them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from lokaly_core.domain.model.orders import OrderStatus


class DeliveryStatus(StrEnum):
    ASSIGNED = "assigned"
    PICKED_UP = "picked_up"
    DELIVERED = "delivered"
    DECLINED = "declined"
    CANCELLED = "cancelled"


# Wrong hand-off codes before the delivery is locked (contract v1.1, "Proof of delivery").
MAX_HANDOFF_ATTEMPTS = 5
HANDOFF_CODE_DIGITS = 4


class DeclineReason(StrEnum):
    """Why an assignment ended before pickup (``delivery.declined``'s ``reason``)."""

    DECLINED = "declined"  # the courier turned it down
    COURIER_OFFLINE = "courier_offline"  # the courier ended their shift
    COURIER_DEACTIVATED = "courier_deactivated"  # staff deactivated the courier


# The courier dropped out: nobody frees up, so the order is dispatched at once.
DROP_OUTS = frozenset({DeclineReason.COURIER_OFFLINE, DeclineReason.COURIER_DEACTIVATED})

ACTIVE_DELIVERY = frozenset({DeliveryStatus.ASSIGNED, DeliveryStatus.PICKED_UP})
# Orders in these statuses still need (or have) a courier.
DISPATCHABLE = frozenset({OrderStatus.CONFIRMED, OrderStatus.PICKING, OrderStatus.READY})


@dataclass(slots=True)
class Delivery:
    id: uuid.UUID
    order_id: uuid.UUID
    courier_id: uuid.UUID
    status: DeliveryStatus
    assigned_at: datetime
    picked_up_at: datetime | None = None
    delivered_at: datetime | None = None
    ended_at: datetime | None = None  # declined or cancelled
    # Proof of delivery (v1.1): the code the customer gives the courier, set at pickup
    # when the store requires one, and the wrong codes tried so far.
    handoff_code: str | None = None
    handoff_failed_attempts: int = 0

    @property
    def handoff_locked(self) -> bool:
        return self.handoff_failed_attempts >= MAX_HANDOFF_ATTEMPTS

    @property
    def handoff_attempts_left(self) -> int:
        return max(0, MAX_HANDOFF_ATTEMPTS - self.handoff_failed_attempts)

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_DELIVERY


@dataclass(frozen=True, slots=True)
class Candidate:
    """A free courier as dispatch sees them."""

    courier_id: uuid.UUID
    lat: float | None
    lng: float | None
    available_since: datetime
    declined_this_order: bool = False
    # When they last declined (or dropped out of) this order, if known.
    declined_at: datetime | None = None
