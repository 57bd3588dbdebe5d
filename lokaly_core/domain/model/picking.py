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
