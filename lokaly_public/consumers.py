"""``WS /ws/orders/{id}/``: live order tracking (contract, "Real-time order tracking").

Ordering guarantee: the socket joins the order's group *before* reading the snapshot,
remembers the last ``status_version`` it sent, drops anything not newer, and fills any
gap from the database, so a watcher sees every change once, in order.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qs
from uuid import UUID

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from rest_framework_simplejwt.exceptions import InvalidToken

from lokaly_core.accounts.models import Role
from lokaly_core.accounts.tokens import PUBLIC, validate_access
from lokaly_core.delivery.location import last_location
from lokaly_core.delivery.selectors import courier_may_watch
from lokaly_core.domain.model.delivery import ACTIVE_DELIVERY
from lokaly_core.orders import selectors
from lokaly_core.orders.models import Order
from lokaly_core.orders.realtime import order_group

logger = logging.getLogger("lokaly.ws")

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_BAD_REQUEST = 4400


def _token_from_scope(scope: dict[str, Any]) -> str | None:
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if query.get("token"):
        return query["token"][0]
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, raw = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and raw.strip():
                return raw.strip()
    return None


def _since_from_scope(scope: dict[str, Any]) -> int | None | bool:
    """The ``since`` parameter: an int, None when absent, False when malformed."""
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("since")
    if not values:
        return None
    try:
        since = int(values[0])
    except ValueError:
        return False
    return since if since >= 0 else False


def _watch_access(order_id: UUID, user_id: str, role: str) -> int:
    """0 when the user may watch the order (its customer, or the courier it is or was
    assigned to, up to delivered), else the close code."""
    row = Order.objects.filter(pk=order_id).values("customer_id").first()
    if row is None:
        return CLOSE_NOT_FOUND
    if role == Role.CUSTOMER and str(row["customer_id"]) == user_id:
        return 0
    if role == Role.COURIER:
        try:
            courier_id = UUID(user_id)
        except ValueError:
            return CLOSE_FORBIDDEN
        if courier_may_watch(order_id=order_id, courier_id=courier_id):
            return 0
    return CLOSE_FORBIDDEN


def _snapshot(
    order_id: UUID, since: int | None
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any] | None]:
    """The order, the changes after ``since``, and where its courier was last seen (while
    a courier has it: a watcher who connects mid-delivery sees the courier at once)."""
    order = selectors.orders_with_lines().get(pk=order_id)
    missed = []
    if since is not None and since < order.status_version:
        missed = selectors.order_history(
            order_id, after_version=since, before_version=order.status_version + 1
        )
    rendered = selectors.order_to_dict(order)
    return rendered, missed, _last_courier_location(order_id, rendered["delivery"])


def _last_courier_location(
    order_id: UUID, delivery: dict[str, Any] | None
) -> dict[str, Any] | None:
    if not delivery or delivery["status"] not in ACTIVE_DELIVERY:
        return None
    try:
        seen = last_location(UUID(delivery["courier"]["id"]))
    except Exception:  # Redis unavailable: the next report arrives within seconds
        logger.warning("last courier location unavailable", exc_info=True)
        return None
    if seen is None:
        return None
    return {"type": "courier.location", "order_id": str(order_id), **seen}


class OrderTrackingConsumer(AsyncWebsocketConsumer):
    order_id: UUID
    group: str | None = None
    last_version = 0

    async def connect(self) -> None:
        await self.accept()
        self.order_id = self.scope["url_route"]["kwargs"]["order_id"]
        token = _token_from_scope(self.scope)
        try:
            claims = validate_access(PUBLIC, token) if token else None
        except InvalidToken:
            claims = None
        if claims is None:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        since = _since_from_scope(self.scope)
        if since is False:
            await self.close(code=CLOSE_BAD_REQUEST)
            return
        denied = await database_sync_to_async(_watch_access)(
            self.order_id, str(claims.get("user_id")), str(claims.get("role"))
        )
        if denied:
            await self.close(code=denied)
            return
        self.group = order_group(self.order_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        order, missed, location = await database_sync_to_async(_snapshot)(self.order_id, since)
        await self._send({"type": "order.snapshot", "order": order})
        for change in missed:
            await self._send(
                {"type": "order.status_changed", "order_id": str(self.order_id), **change}
            )
        self.last_version = order["status_version"]
        if location is not None:
            await self._send(location)

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            message = json.loads(text_data or bytes_data or b"")
        except (ValueError, UnicodeDecodeError):
            message = None
        if isinstance(message, dict) and message.get("type") == "ping":
            await self._send({"type": "pong"})
            return
        await self._send(
            {
                "type": "error",
                "error": {
                    "code": "malformed_request",
                    "message": 'The server understands {"type": "ping"} only.',
                    "details": {},
                },
            }
        )

    # -- group messages ----------------------------------------------------------------

    async def order_status_changed(self, message: dict[str, Any]) -> None:
        version = int(message["status_version"])
        if version <= self.last_version:
            return
        if version > self.last_version + 1:
            missed = await database_sync_to_async(selectors.order_history)(
                self.order_id, after_version=self.last_version, before_version=version
            )
            for change in missed:
                await self._send(
                    {"type": "order.status_changed", "order_id": str(self.order_id), **change}
                )
        await self._send(message)
        self.last_version = version

    async def courier_location(self, message: dict[str, Any]) -> None:
        await self._send(message)

    async def _send(self, message: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(message, separators=(",", ":")))


class NoSuchRouteConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        await self.accept()
        await self.close(code=CLOSE_NOT_FOUND)
