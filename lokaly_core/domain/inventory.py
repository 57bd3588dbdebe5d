"""Manual stock adjustments (deliveries in, breakage and counts out)."""

from __future__ import annotations

import uuid

from lokaly_core.domain.errors import InsufficientStock, NotFound, ValidationFailed
from lokaly_core.domain.model.inventory import StockLevel
from lokaly_core.domain.ports import UnitOfWork

MAX_REASON_LENGTH = 300
# One adjustment moves at most this many units (the ledger's delta is a PostgreSQL integer).
MAX_DELTA = 1_000_000


def stock_adjust(
    *,
    uow: UnitOfWork,
    store_id: uuid.UUID,
    product_id: uuid.UUID,
    delta: int,
    reason: str,
    actor_id: uuid.UUID | None,
) -> StockLevel:
    """Change ``on_hand`` by ``delta`` and record why in the ledger.

    ``on_hand`` never drops below what confirmed orders hold (``reserved``). A positive
    delta for a product the store does not carry yet starts carrying it.
    """
    errors: dict[str, list[str]] = {}
    if isinstance(delta, bool) or not isinstance(delta, int) or delta == 0:
        errors["delta"] = ["A non-zero whole number of units."]
    elif abs(delta) > MAX_DELTA:
        errors["delta"] = [f"At most {MAX_DELTA} units either way."]
    if not reason.strip() or len(reason) > MAX_REASON_LENGTH:
        errors["reason"] = [f"Say why, in 1 to {MAX_REASON_LENGTH} characters."]
    if errors:
        raise ValidationFailed(errors)
    with uow:
        level = uow.stock.get_level_for_update(store_id, product_id)
        if level is None:
            if delta < 0:
                raise InsufficientStock(
                    "The store holds none of this product.",
                    details={"on_hand": 0, "reserved": 0, "available": 0, "delta": delta},
                )
            level = uow.stock.create_level(store_id, product_id)
            if level is None:
                raise NotFound("No such store or product.")
        if level.on_hand + delta < level.reserved:
            raise InsufficientStock(
                "On hand cannot drop below what confirmed orders hold.",
                details={
                    "on_hand": level.on_hand,
                    "reserved": level.reserved,
                    "available": level.available,
                    "delta": delta,
                },
            )
        level.on_hand += delta
        uow.stock.record_adjustment(level, delta=delta, reason=reason.strip(), actor_id=actor_id)
        uow.commit()
    return level
