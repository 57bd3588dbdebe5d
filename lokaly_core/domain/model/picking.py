"""An order's picking: store staff collecting its lines."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class PickingStatus(StrEnum):
    STARTED = "started"
    COMPLETED = "completed"


@dataclass(slots=True)
class Picking:
    order_id: uuid.UUID
    status: PickingStatus
    started_at: datetime
    completed_at: datetime | None = None
    started_by: uuid.UUID | None = None
    completed_by: uuid.UUID | None = None


class SubstitutionStatus(StrEnum):
    PROPOSED = "proposed"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    EXPIRED = "expired"


# While a proposal is in one of these, its substitute's units stay reserved for the order
# (until the picking completes: then an accepted substitute is an order line).
HOLDS_STOCK = frozenset({SubstitutionStatus.PROPOSED, SubstitutionStatus.ACCEPTED})


@dataclass(slots=True)
class Substitution:
    """A substitute proposed for the missing units of an ordered product (prices
    snapshotted when proposed, as an order's are)."""

    product_id: uuid.UUID
    name: str
    quantity: int
    unit_price_cents: int
    status: SubstitutionStatus
    expires_at: datetime
    answered_at: datetime | None = None

    @property
    def holds_stock(self) -> bool:
        return self.status in HOLDS_STOCK

    def is_open(self) -> bool:
        return self.status is SubstitutionStatus.PROPOSED

    def is_due(self, now: datetime) -> bool:
        """Still open and past its expiry: it counts as expired (= rejected)."""
        return self.is_open() and now >= self.expires_at


@dataclass(slots=True)
class PickingLine:
    """What staff found of one ordered product: ``picked_quantity`` of
    ``ordered_quantity``, and perhaps a substitute for the rest."""

    order_id: uuid.UUID
    product_id: uuid.UUID
    ordered_quantity: int
    picked_quantity: int
    recorded_at: datetime
    recorded_by: uuid.UUID | None = None
    substitute: Substitution | None = None
