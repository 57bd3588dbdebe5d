"""A store's stock of one product."""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(slots=True)
class StockLevel:
    store_id: uuid.UUID
    product_id: uuid.UUID
    on_hand: int
    reserved: int

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved
