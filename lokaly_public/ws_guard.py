"""What guards the order sockets before and around the consumer (contract v1.1, "Order sockets").

- **The IP's rate limit.** Django's middleware does not run for sockets, so every
  handshake is counted in the client IP's window of the public rate limit, the very
  counter HTTP requests use (``lokaly_public.middleware.ip_window``: same key). Over the
  limit the socket is accepted and closed at once with 4429, before anything else is
  read. The client IP is found as ``client_ip`` finds it: the peer's address,
  ``X-Forwarded-For`` only from a proxy in ``TRUSTED_PROXIES``. The order socket counts
  with its slot's claim (``claim_handshake``), or alone when its token or ``since`` is
  bad (``count_handshake``); every other route through ``HandshakeRateLimit``
  (``lokaly_public.routing``).
- **Slots** (``claim_handshake`` / ``claim_slot`` / ``release_slot``): at most
  ``WS_MAX_SOCKETS_PER_USER`` open sockets per account, across every public process. A
  Redis sorted set per account holds the channel names of its open sockets, each scored
  by the expiry of the token it lives on; a claim first drops the members whose token
  has expired, so the slots of a process that died without closing its sockets come back
  at the latest when those tokens expire (a socket never outlives its token).

A handshake sends one script (the count, the session's revocation marker, the claim) and
a close one ``ZREM``, each in the event loop, where they are called: a thread hop costs
more than the command. Redis unreachable: the socket is let through (as the HTTP rate
limit lets requests through), and the log says so.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import caches

from lokaly_core.accounts import session_store
from lokaly_public.middleware import IpWindow, client_ip_of, count_ip, ip_window

logger = logging.getLogger("lokaly.ws")

CLOSE_RATE_LIMITED = 4429


def scope_client_ip(scope: dict[str, Any]) -> str:
    """The client IP of an ASGI connection, as ``client_ip`` reads it from a request."""
    client = scope.get("client")
    peer = str(client[0]) if client else ""
    forwarded = b",".join(
        value for name, value in scope.get("headers", []) if name == b"x-forwarded-for"
    ).decode("latin-1")
    return client_ip_of(peer, forwarded)


def count_handshake(scope: dict[str, Any]) -> bool:
    """Count a handshake in its client IP's rate limit: True when it is over."""
    try:
        usage = count_ip(scope_client_ip(scope))
    except Exception:  # Redis down: serve rather than refuse everyone (as HTTP does)
        logger.warning("rate limit unavailable; socket let through", exc_info=True)
        return False
    return bool(usage and usage["should_limit"])


class HandshakeRateLimit:
    """Counts every WebSocket handshake of the app it wraps against the client IP's public
    rate limit (for routes whose consumer does not count with a slot)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        # Counted in the event loop, not in a thread: one Redis command on the cache's
        # pool (~0.1 ms); a thread hop cost more than the command (bench/sockets.py cpu:
        # 0.6 ms more per handshake and close with the count and the release in threads).
        if scope["type"] == "websocket" and count_handshake(scope):
            message = await receive()
            if message["type"] == "websocket.connect":
                await send({"type": "websocket.accept"})
                await send({"type": "websocket.close", "code": CLOSE_RATE_LIMITED})
            return
        await self.app(scope, receive, send)


# -- open sockets per account -------------------------------------------------------------

# KEYS[1] the account's set; KEYS[2] the client IP's window count (the HTTP rate limit's
# key, ``middleware.ip_window``), counted first when ARGV[5] is 1; KEYS[3] and KEYS[4],
# when given, are the session's revocation marker and the sentinel
# (``session_store.check_keys``). ARGV: now, the token's expiry, the channel name, the
# cap, whether to count, the IP's limit, the window's expiry. A handshake over its IP's
# limit claims nothing. A member already in the set (a renewed token) is re-scored, never
# refused. Answers {claimed, revoked, warm, limited}: a handshake's rate limit, session
# check and slot in one round trip.
_CLAIM_SCRIPT = """
if ARGV[5] == '1' then
  local count = redis.call('INCR', KEYS[2])
  if count == 1 then redis.call('EXPIRE', KEYS[2], ARGV[7]) end
  if count > tonumber(ARGV[6]) then return {0, 0, 1, 1} end
end
local checked = {0, 1}
if #KEYS == 4 then
  checked = {redis.call('EXISTS', KEYS[3]), redis.call('EXISTS', KEYS[4])}
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if not redis.call('ZSCORE', KEYS[1], ARGV[3]) then
  if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
    return {0, checked[1], checked[2], 0}
  end
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('EXPIREAT', KEYS[1], math.ceil(tonumber(last[2])) + 1)
return {1, checked[1], checked[2], 0}
"""
_scripts: dict[int, Any] = {}


def _client() -> Any:
    # The default cache's own client (its pool and timeouts), as the rate limiter uses it;
    # Django names it a private member.
    cache: Any = caches["default"]
    return cache._cache.get_client(write=True)


def _key(user_id: str) -> str:
    return str(caches["default"].make_and_validate_key(f"ws-sockets:{user_id}"))


@dataclass(frozen=True)
class Claim:
    """A handshake's answer from Redis (``claim_handshake``)."""

    limited: bool  # over its IP's rate limit: nothing claimed
    claimed: bool  # holds a slot of its account now
    # For ``session_store.session_revoked``: (sid, revoked, warm), or None when there is
    # no sid or Redis did not answer (it then asks again itself).
    stashed: tuple[str, int, int] | None


def claim_slot(user_id: str, channel_name: str, expires_at: float) -> bool:
    """Hold one of the account's socket slots until ``expires_at`` (the token's expiry;
    called again with a renewed token's). False when the account has no slot left."""
    return _claim(user_id, channel_name, expires_at, None, None).claimed


def claim_handshake(
    scope: dict[str, Any], user_id: str, channel_name: str, expires_at: float, sid: str | None
) -> Claim:
    """Count the handshake in its client IP's rate limit (as HTTP requests count) and,
    unless that is over, claim one of the account's slots until ``expires_at``, reading
    session ``sid``'s revocation marker: one Redis round trip. With the rate limit in
    another cache than the slots, two."""
    window = ip_window(scope_client_ip(scope))
    if window is not None and window.alias != "default":
        if count_handshake(scope):
            return Claim(limited=True, claimed=False, stashed=None)
        window = None
    return _claim(user_id, channel_name, expires_at, sid, window)


def _claim(
    user_id: str,
    channel_name: str,
    expires_at: float,
    sid: str | None,
    window: IpWindow | None,
) -> Claim:
    try:
        client = _client()
        script = _scripts.get(id(client))
        if script is None:
            script = _scripts[id(client)] = client.register_script(_CLAIM_SCRIPT)
        slots = _key(user_id)
        keys = [slots, slots if window is None else window.key]
        if sid is not None:
            keys += session_store.check_keys(sid)
        args = [time.time(), expires_at, channel_name, settings.WS_MAX_SOCKETS_PER_USER]
        args += [0, 0, 0] if window is None else [1, window.limit, window.expiry_s]
        claimed, revoked, warm, limited = script(keys=keys, args=args)
    except Exception:
        logger.warning("socket slots unavailable; socket let through", exc_info=True)
        return Claim(limited=False, claimed=True, stashed=None)
    stashed = None if sid is None else (sid, int(revoked), int(warm))
    return Claim(limited=bool(limited), claimed=bool(claimed), stashed=stashed)


def release_slot(user_id: str, channel_name: str) -> None:
    try:
        _client().zrem(_key(user_id), channel_name)
    except Exception:  # the slot frees itself at the token's expiry
        logger.warning("socket slot not released", exc_info=True)
