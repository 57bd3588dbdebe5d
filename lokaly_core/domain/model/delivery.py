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
