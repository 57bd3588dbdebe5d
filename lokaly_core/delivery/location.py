"""Couriers' live locations: to the watchers of their orders at once, to the database now
and then.

A courier app reports its position every few seconds. Each report is sent to the
Channels group of every order the courier is delivering (one indexed read, no write) and
kept in Redis as the courier's last known position. Dispatch ranks couriers by the
database copy (``CourierState.lat/lng``), which is written at most once per
``COURIER_LOCATION_WRITE_SECONDS`` per courier: a Redis ``SET NX EX`` key decides which
report gets written, so many API processes share one throttle.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from django.conf import settings

from lokaly_core.broadcast import get_broadcaster
from lokaly_core.delivery.models import CourierState
from lokaly_core.delivery.selectors import active_order_ids
from lokaly_core.events.contracts import format_timestamp
from lokaly_core.orders.realtime import order_group
from lokaly_core.redis_client import get_redis

logger = logging.getLogger("lokaly.location")

# The last position outlives any sensible gap between two reports of one shift.
LAST_LOCATION_TTL_SECONDS = 24 * 3600


@dataclass(frozen=True, slots=True)
class LocationReport:
    courier_id: UUID
    lat: float
    lng: float
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class LocationOutcome:
    order_ids: list[UUID]  # whose watchers were sent the location
    stored: bool  # written to the database (else throttled)


def _key(kind: str, courier_id: UUID) -> str:
    prefix = settings.CACHES["default"].get("KEY_PREFIX", "lokaly")
    return f"{prefix}:courier:{kind}:{courier_id}"


def location_message(order_id: UUID, report: LocationReport) -> dict[str, Any]:
    """The socket message (``type`` routes to the consumer's ``courier_location``)."""
    return {
        "type": "courier.location",
        "order_id": str(order_id),
        "lat": report.lat,
        "lng": report.lng,
        "recorded_at": format_timestamp(report.recorded_at),
    }


def courier_report_location(*, report: LocationReport) -> LocationOutcome:
    """Send the position to the courier's order watchers, remember it, store it if due."""
    order_ids = active_order_ids(report.courier_id)
    for order_id in order_ids:
        try:
            get_broadcaster().group_send(order_group(order_id), location_message(order_id, report))
        except Exception:  # live tracking is best effort; the next report follows soon
            logger.warning("courier location not broadcast to order %s", order_id, exc_info=True)
    stored = False
    if _remember(report):
        _store(report)
        stored = True
    return LocationOutcome(order_ids=order_ids, stored=stored)


def _remember(report: LocationReport) -> bool:
    """Keep the report as the last location; True when the database copy is due."""
    value = json.dumps(
        {"lat": report.lat, "lng": report.lng, "recorded_at": format_timestamp(report.recorded_at)}
    )
    seconds = max(1, int(settings.COURIER_LOCATION_WRITE_SECONDS))
    try:
        pipe = get_redis().pipeline(transaction=False)
        pipe.set(_key("location", report.courier_id), value, ex=LAST_LOCATION_TTL_SECONDS)
        pipe.set(_key("location-written", report.courier_id), "1", nx=True, ex=seconds)
        _, due = pipe.execute()
    except Exception:  # Redis down: the database copy is what dispatch needs
        logger.warning("courier location throttle unavailable; writing", exc_info=True)
        return True
    return bool(due)


def _store(report: LocationReport) -> None:
    """Upsert the courier's state row (a courier who never went online gets one, offline)."""
    CourierState.objects.bulk_create(
        [
            CourierState(
                courier_id=report.courier_id,
                is_online=False,
                lat=report.lat,
                lng=report.lng,
                location_at=report.recorded_at,
                available_since=report.recorded_at,
            )
        ],
        update_conflicts=True,
        unique_fields=["courier"],
        update_fields=["lat", "lng", "location_at", "updated_at"],
    )


def last_location(courier_id: UUID) -> dict[str, Any] | None:
    """The last reported ``{lat, lng, recorded_at}`` (from Redis), or None."""
    raw = cast("bytes | None", get_redis().get(_key("location", courier_id)))
    return json.loads(raw) if raw else None
