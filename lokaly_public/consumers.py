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

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from rest_framework_simplejwt.exceptions import InvalidToken
from typing_extensions import override

from lokaly_core.accounts.models import Role
from lokaly_core.accounts.tokens import PUBLIC, validate_access
from lokaly_core.delivery.location import last_location
from lokaly_core.domain.model.delivery import ACTIVE_DELIVERY
from lokaly_core.orders import selectors
from lokaly_core.orders.realtime import order_group
from lokaly_core.orders.tracking import WatchedOrder, watched_order

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


def _watch(
    order_id: UUID, user_id: str, role: str, since: int | None
) -> tuple[int, WatchedOrder | None, dict[str, Any] | None]:
    """(0, the order, its courier's last location) when the user may watch it (its
    customer, or the courier it is or was assigned to, up to delivered), else (the close
    code, None, None). One query, plus a Redis read while a courier has the order."""
    try:
        user_uuid: UUID | None = UUID(user_id)
    except ValueError:
        user_uuid = None
    watched = watched_order(
        order_id=order_id, watcher_id=user_uuid if role == Role.COURIER else None, since=since
    )
    if watched is None:
        return CLOSE_NOT_FOUND, None, None
    allowed = (role == Role.CUSTOMER and watched.customer_id == user_uuid) or (
        role == Role.COURIER and watched.watcher_delivers
    )
    if not allowed:
        return CLOSE_FORBIDDEN, None, None
    return 0, watched, _last_courier_location(order_id, watched.order["delivery"])


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



# Layers (per process) that hold a subscription of their own for the process's lifetime.
_LISTENING: set[int] = set()


async def _keep_layer_listening(layer: Any) -> None:
    """channels_redis' pub/sub layer reads its Redis subscription in a loop that, while the
    process has no subscription at all, sleeps 100 ms between looks. Every socket
    subscribes on connecting and unsubscribes on closing, so in a quiet process (sockets
    opened one at a time) the first messages of a new socket waited 0-100 ms for that
    sleep to end (bench: snapshot to ``confirmed`` p50 55 ms at 1 customer). One channel
    kept for the process's lifetime keeps the loop reading (one Redis host: one shard)."""
    if id(layer) in _LISTENING or not hasattr(layer, "new_channel"):
        return
    _LISTENING.add(id(layer))
    await layer.new_channel(prefix="lokaly-keepalive.")

class OrderTrackingConsumer(AsyncWebsocketConsumer):
    order_id: UUID
    group: str | None = None
    last_version = 0
    watching = False  # the snapshot is sent: group messages may follow

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
        # Join the group before reading the snapshot: a change committed meanwhile is
        # then either in the snapshot or delivered after it (and dropped as not newer).
        self.group = order_group(self.order_id)
        await _keep_layer_listening(self.channel_layer)
        await self.channel_layer.group_add(self.group, self.channel_name)
        denied, watched, location = await database_sync_to_async(_watch)(
            self.order_id, str(claims.get("user_id")), str(claims.get("role")), since
        )
        if watched is None:
            await self.channel_layer.group_discard(self.group, self.channel_name)
            self.group = None
            await self.close(code=denied)
            return
        await self._send({"type": "order.snapshot", "order": watched.order})
        for change in watched.missed:
            await self._send(
                {"type": "order.status_changed", "order_id": str(self.order_id), **change}
            )
        self.last_version = watched.order["status_version"]
        self.watching = True
        if location is not None:
            await self._send(location)

    @override
    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels' dispatch runs close_old_connections in the sync thread before every
        # handler: a thread hop per message, so a broadcast to 1,000 watchers queued 1,000
        # hops behind one thread (docs/performance.md). This consumer reaches the
        # database only through database_sync_to_async, which does that itself.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

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
        if not self.watching or version <= self.last_version:
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
        if self.watching:
            await self._send(message)

    async def _send(self, message: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(message, separators=(",", ":")))


class NoSuchRouteConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        await self.accept()
        await self.close(code=CLOSE_NOT_FOUND)
