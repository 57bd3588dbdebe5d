"""The picking repository port on PostgreSQL."""

from __future__ import annotations

from uuid import UUID

from lokaly_core.domain.model import picking as pk
from lokaly_core.picking.models import Picking as PickingRow


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
