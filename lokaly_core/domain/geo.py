"""Great-circle distance: the one definition that dispatch and the delivery area use.

Dispatch ranks couriers by it (``domain/delivery.py``); order intake checks a delivery
address against the store's ``delivery_radius_m`` with it (``domain/services.py``). No SQL
computes a distance: where the database will need to (a radius filter in a query), it
mirrors this formula with the same ``EARTH_RADIUS_M`` (docs/api.md, "Stores: opening
hours and delivery area").
"""

from __future__ import annotations

import math

EARTH_RADIUS_M = 6_371_008.8  # the mean radius (IUGG)


def distance_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance in metres between two points in degrees (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))
