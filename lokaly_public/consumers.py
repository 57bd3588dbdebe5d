"""``WS /ws/orders/{id}/``: live order tracking (contract, "Real-time order tracking").

Ordering guarantee: the socket joins the order's group *before* reading the snapshot,
remembers the last ``status_version`` it sent, drops anything not newer, and fills any
gap from the database, so a watcher sees every change once, in order.

Lifetime (contract v1.1, "Order sockets"): a socket is admitted when its token is valid,
its account active with the token's role and its session not revoked
(``sessions.token_still_good``), and the account holds a free socket slot
(``ws_guard.claim_slot``); it is closed with 4401 at its token's expiry unless the client
sent a newer token of the same account (``{"type": "auth"}``), and when told its account
changed (``revocation``: it joins ``account_group``) and the token is no longer good.
Each handshake counts in its client IP's rate limit: with the slot's claim in one Redis
round trip (``ws_guard.claim_handshake``), or alone when the token or ``since`` is bad
(``ws_guard.count_handshake``); over the limit it is closed with 4429 before anything else
is read.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs
from uuid import UUID

import orjson
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from rest_framework_simplejwt.exceptions import InvalidToken
from typing_extensions import override

from lokaly_core.accounts import session_store
from lokaly_core.accounts.models import Role
from lokaly_core.accounts.revocation import account_group
from lokaly_core.accounts.sessions import token_still_good
from lokaly_core.accounts.tokens import PUBLIC, validate_access
from lokaly_core.delivery.location import last_location
from lokaly_core.domain.model.delivery import ACTIVE_DELIVERY
from lokaly_core.orders import selectors
from lokaly_core.orders.realtime import order_group
from lokaly_core.orders.tracking import (
    WATCHED_SQL,
    WatchedOrder,
    watched_from_row,
    watched_params,
)
from lokaly_public import db_async
from lokaly_public.ws_guard import (
    CLOSE_RATE_LIMITED,
    claim_handshake,
    claim_slot,
    count_handshake,
    release_slot,
)

logger = logging.getLogger("lokaly.ws")

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_BAD_REQUEST = 4400
CLOSE_TOO_MANY = CLOSE_RATE_LIMITED  # the account holds WS_MAX_SOCKETS_PER_USER already


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


async def _admit(
    order_id: UUID,
    claims: dict[str, Any],
    since: int | None,
    stashed: tuple[str, int, int] | None,
    claimed: bool,
) -> tuple[int, WatchedOrder | None, dict[str, Any] | None]:
    """(0, the order, its courier's last location) when the token is still good (account
    active with the token's role, session not revoked), the user may watch the order (its
    customer, or the courier it is or was assigned to, up to delivered) and the account
    got a socket slot (``claimed``); else (the close code, None, None).

    One SQL statement (the order, with the account's role), awaited in the event loop
    (``db_async``: no thread hop), plus a Redis read while a courier has the order. The
    session's marker came with the slot's claim (``stashed``): ``token_still_good``'s
    answer at the cost of the order read alone. What needs more (no such order, a marker
    Redis forgot) goes to Django's thread as before."""
    user_id, role = str(claims.get("user_id")), str(claims.get("role"))
    try:
        user_uuid = UUID(user_id)
    except ValueError:
        return CLOSE_UNAUTHENTICATED, None, None
    row = await db_async.fetch_one(
        WATCHED_SQL,
        watched_params(
            order_id=order_id,
            watcher_id=user_uuid if role == Role.COURIER else None,
            since=since,
            account_id=user_uuid,
        ),
    )
    watched = watched_from_row(row)
    if watched is None:  # no such order; a token no longer good hears that first
        good = await database_sync_to_async(token_still_good)(claims)
        return (CLOSE_NOT_FOUND if good else CLOSE_UNAUTHENTICATED), None, None
    if watched.account_role != role:
        return CLOSE_UNAUTHENTICATED, None, None
    allowed = (role == Role.CUSTOMER and watched.customer_id == user_uuid) or (
        role == Role.COURIER and watched.watcher_delivers
    )
    if not allowed:
        return CLOSE_FORBIDDEN, None, None
    sid = None if claims.get("sid") is None else str(claims["sid"])
    if sid is not None:
        revoked = session_store.stashed_answer(sid, stashed)
        if revoked is None:
            revoked = await database_sync_to_async(session_store.session_revoked)(sid, stashed)
        if revoked:
            return CLOSE_UNAUTHENTICATED, None, None
    if not claimed:
        return CLOSE_TOO_MANY, None, None
    if role == Role.CUSTOMER:
        watched = replace(
            watched, order=selectors.with_handoff_code(watched.order, watched.handoff_code)
        )
    # One Redis command in the loop, only while a courier has the order.
    return 0, watched, _last_courier_location(order_id, watched.order["delivery"])


def _renew(claims: dict[str, Any], channel_name: str) -> bool:
    """A newer token for an open socket: good, and its slot now lasts until its expiry."""
    if not token_still_good(claims):
        return False
    claim_slot(str(claims.get("user_id")), channel_name, float(claims["exp"]))
    return True


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
    if hasattr(layer, "listen"):  # lokaly_public.channel_layer: new_channel subscribes nothing
        await layer.listen(await layer.new_channel(prefix="lokaly-keepalive."))
    else:
        await layer.new_channel(prefix="lokaly-keepalive.")


class OrderTrackingConsumer(AsyncWebsocketConsumer):
    order_id: UUID
    group: str | None = None
    account: str | None = None  # the account's group, joined at connect
    claims: dict[str, Any] | None = None  # the token the socket lives on
    user_id = ""
    holds_slot = False
    closed = False  # closed by the server: nothing more is sent
    last_version = 0
    watching = False  # the snapshot is sent: group messages may follow
    role = ""
    last_amended: dict[str, Any] | None = None
    _expiry: asyncio.TimerHandle | None = None
    _closing: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        await self.accept()
        self.order_id = self.scope["url_route"]["kwargs"]["order_id"]
        token = _token_from_scope(self.scope)
        try:
            claims = validate_access(PUBLIC, token) if token else None
        except InvalidToken:
            claims = None
        token_good = claims is not None and float(claims["exp"]) > time.time()
        since = _since_from_scope(self.scope)
        if claims is None or not token_good or since is False:
            # Counted in the IP's rate limit all the same (one Redis command, in the loop).
            if count_handshake(self.scope):
                code = CLOSE_RATE_LIMITED
            else:
                code = CLOSE_UNAUTHENTICATED if not token_good else CLOSE_BAD_REQUEST
            await self.close(code=code)
            return
        self.claims = claims
        self.user_id = str(claims.get("user_id"))
        self.role = str(claims.get("role"))
        # The IP's rate limit, the account's socket slot and the session's marker: one
        # Redis round trip, in the event loop (a thread hop costs more than the command).
        sid = None if claims.get("sid") is None else str(claims["sid"])
        claim = claim_handshake(
            self.scope, self.user_id, self.channel_name, float(claims["exp"]), sid
        )
        if claim.limited:
            await self.close(code=CLOSE_RATE_LIMITED)
            return
        self.holds_slot = claim.claimed
        # Join the groups before reading the snapshot: a change committed meanwhile is
        # then either in the snapshot or delivered after it (and dropped as not newer);
        # an account change committed meanwhile is either seen by the check below or
        # announced to this socket.
        self.group = order_group(self.order_id)
        self.account = account_group(self.user_id)
        await _keep_layer_listening(self.channel_layer)
        await asyncio.gather(
            self.channel_layer.group_add(self.group, self.channel_name),
            self.channel_layer.group_add(self.account, self.channel_name),
        )
        denied, watched, location = await _admit(
            self.order_id, claims, since, claim.stashed, claim.claimed
        )
        if watched is None:
            self._release_slot()
            await self._leave_groups()
            await self.close(code=denied)
            return
        self._expire_at(float(claims["exp"]))
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

    @override
    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        # The parent's, without its close_old_connections thread hop at every close (6 %
        # of a public process at 32 customers, docs/performance.md): no database work
        # happens on this thread (see dispatch), and this consumer joins no ``groups``.
        await self.disconnect(message["code"])
        raise StopConsumer()

    async def disconnect(self, code: int) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        self.claims = None
        self._release_slot()
        await self._leave_groups()

    def _release_slot(self) -> None:
        if self.holds_slot:
            self.holds_slot = False
            release_slot(self.user_id, self.channel_name)  # one Redis command, no thread hop

    async def _leave_groups(self) -> None:
        groups = [g for g in (self.group, self.account) if g]
        self.group = self.account = None
        await asyncio.gather(
            *(self.channel_layer.group_discard(g, self.channel_name) for g in groups)
        )

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            message = json.loads(text_data or bytes_data or b"")
        except (ValueError, UnicodeDecodeError):
            message = None
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "ping":
            await self._send({"type": "pong"})
        elif kind == "auth" and isinstance(message, dict):
            await self._renew_token(message.get("token"))
        else:
            await self._error(
                "malformed_request",
                'The server understands {"type": "ping"} and {"type": "auth", "token"} only.',
            )

    # -- the token the socket lives on ---------------------------------------------------

    async def _renew_token(self, token: object) -> None:
        """``{"type": "auth", "token"}``: a valid access token of the socket's account (its
        session still good) becomes the one the socket lives on; anything else leaves the
        socket as it was."""
        try:
            claims = validate_access(PUBLIC, token) if isinstance(token, str) and token else None
        except InvalidToken:
            claims = None
        good = (
            claims is not None
            and self.claims is not None
            and str(claims.get("user_id")) == self.user_id
            and float(claims["exp"]) > time.time()
            and await database_sync_to_async(_renew)(claims, self.channel_name)
        )
        if not good or claims is None or self.claims is None:
            await self._error("token_invalid", "Not a valid access token of this account.")
            return
        self.claims = claims
        self._expire_at(float(claims["exp"]))
        expires_at = datetime.fromtimestamp(float(claims["exp"]), tz=UTC)
        await self._send(
            {"type": "auth.ok", "expires_at": expires_at.isoformat().replace("+00:00", "Z")}
        )

    def _expire_at(self, exp: float) -> None:
        """Close the socket with 4401 at ``exp`` (one timer per socket)."""
        if self._expiry is not None:
            self._expiry.cancel()
        loop = asyncio.get_running_loop()
        self._expiry = loop.call_later(max(0.0, exp - time.time()), self._expired)

    def _expired(self) -> None:
        self._expiry = None
        self._closing = asyncio.ensure_future(self._close_unauthenticated())

    async def _close_unauthenticated(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.claims = None
        self.watching = False
        await self.close(code=CLOSE_UNAUTHENTICATED)

    async def account_changed(self, message: dict[str, Any]) -> None:
        """``revocation.announce_account_change``: look at the token again."""
        claims = self.claims
        if claims is None:
            return
        if not await database_sync_to_async(token_still_good)(claims):
            await self._close_unauthenticated()

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

    async def order_substitution_proposed(self, message: dict[str, Any]) -> None:
        """v1.1: for the order's customer, who answers it (not its courier)."""
        if self.watching and self.role == Role.CUSTOMER:
            await self._send(message)

    async def order_amended(self, message: dict[str, Any]) -> None:
        """v1.1: the picking's amendment, sent before the order's ``ready``; a repeat
        (the worker's transaction ran again) is dropped."""
        if not self.watching or message == self.last_amended:
            return
        self.last_amended = message
        await self._send(message)

    async def _send(self, message: dict[str, Any]) -> None:
        if self.closed:
            return
        # orjson: the JSON of json.dumps(separators=(",", ":")) but for non-ASCII text,
        # sent as UTF-8 rather than escaped, at a fraction of the CPU (a snapshot is the
        # whole order, on every handshake).
        await self.send(text_data=orjson.dumps(message).decode())

    async def _error(self, code: str, text: str) -> None:
        # ``code`` at the top (contract v1.1) and the v1 error envelope under ``error``.
        await self._send(
            {
                "type": "error",
                "code": code,
                "error": {"code": code, "message": text, "details": {}},
            }
        )


class NoSuchRouteConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        await self.accept()
        await self.close(code=CLOSE_NOT_FOUND)
