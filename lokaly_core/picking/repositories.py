"""The picking repository port on PostgreSQL."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from lokaly_core.domain.model import picking as pk
from lokaly_core.picking.models import Picking as PickingRow
from lokaly_core.picking.models import PickingLine as PickingLineRow


class OrmPicking:
    def get(self, order_id: UUID) -> pk.Picking | None:
        row = PickingRow.objects.filter(order_id=order_id).first()
        if row is None:
            return None
        return pk.Picking(
            order_id=row.order_id,
            status=pk.PickingStatus(row.status),
            started_at=row.started_at,
            completed_at=row.completed_at,
            started_by=row.started_by_id,
            completed_by=row.completed_by_id,
        )

    def add(self, picking: pk.Picking) -> None:
        PickingRow.objects.create(
            order_id=picking.order_id,
            status=picking.status,
            started_at=picking.started_at,
            started_by_id=picking.started_by,
        )

    def save(self, picking: pk.Picking) -> None:
        PickingRow.objects.filter(order_id=picking.order_id).update(
            status=picking.status,
            completed_at=picking.completed_at,
            completed_by_id=picking.completed_by,
        )

    # -- v1.1: the picking's lines and their substitute proposals -------------------------

    def lines(self, order_id: UUID) -> list[pk.PickingLine]:
        """The order's recorded lines (callers hold the order's lock, which every change
        of its lines takes first)."""
        return [_line_of(row) for row in PickingLineRow.objects.filter(order_id=order_id)]

    def save_line(self, line: pk.PickingLine) -> None:
        """Insert or replace the (order, product) line."""
        sub = line.substitute
        PickingLineRow.objects.update_or_create(
            order_id=line.order_id,
            product_id=line.product_id,
            defaults={
                "ordered_quantity": line.ordered_quantity,
                "picked_quantity": line.picked_quantity,
                "recorded_by_id": line.recorded_by,
                "recorded_at": line.recorded_at,
                "substitute_id": sub.product_id if sub else None,
                "substitute_name": sub.name if sub else "",
                "substitute_quantity": sub.quantity if sub else None,
                "substitute_unit_price_cents": sub.unit_price_cents if sub else None,
                "substitution_status": str(sub.status) if sub else None,
                "expires_at": sub.expires_at if sub else None,
                "answered_at": sub.answered_at if sub else None,
            },
        )

    def due_proposals(self, now: datetime, limit: int) -> list[tuple[UUID, UUID]]:
        """(order_id, product_id) of open proposals past their expiry, oldest first, at
        most ``limit`` (on the partial index ``pickingline_proposed_exp_idx``); unlocked:
        the caller locks each order and looks again."""
        return list(
            PickingLineRow.objects.filter(
                substitution_status=PickingLineRow.SubstitutionStatus.PROPOSED,
                expires_at__lte=now,
            )
            .order_by("expires_at")
            .values_list("order_id", "product_id")[:limit]
        )


def _line_of(row: PickingLineRow) -> pk.PickingLine:
    substitute = None
    if row.substitute_id is not None:
        substitute = pk.Substitution(
            product_id=row.substitute_id,
            name=row.substitute_name,
            quantity=row.substitute_quantity or 0,
            unit_price_cents=row.substitute_unit_price_cents or 0,
            status=pk.SubstitutionStatus(str(row.substitution_status)),
            expires_at=row.expires_at,  # type: ignore[arg-type]
            answered_at=row.answered_at,
        )
    return pk.PickingLine(
        order_id=row.order_id,
        product_id=row.product_id,
        ordered_quantity=row.ordered_quantity,
        picked_quantity=row.picked_quantity,
        recorded_at=row.recorded_at,
        recorded_by=row.recorded_by_id,
        substitute=substitute,
    )
