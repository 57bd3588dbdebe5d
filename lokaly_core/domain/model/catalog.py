"""What the order services read from the catalog: a store and the offers it makes."""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from lokaly_core.domain.hours import StoreHours


@dataclass(frozen=True, slots=True)
class StoreInfo:
    """A store as order intake needs it. The defaults are a v1 store: always open, no
    delivery radius."""

    id: UUID
    is_active: bool
    lat: float = 0.0
    lng: float = 0.0
    hours: StoreHours = field(default_factory=StoreHours)
    delivery_radius_m: int | None = None
    # Orders of the customer the read was made for that are neither delivered nor
    # cancelled (0 when it was made for nobody): read with the store, in one statement.
    customer_open_orders: int = 0


@dataclass(frozen=True, slots=True)
class Offer:
    """A product as a given store sells it."""

    product_id: UUID
    name: str
    price_cents: int
    currency: str
    is_active: bool
