"""What the order services read from the catalog: a store and the offers it makes."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID


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
