"""What guards the order sockets before and around the consumer (contract v1.1, "Order sockets").

- ``HandshakeRateLimit``: an ASGI middleware around the WebSocket router. Django's
  middleware does not run for sockets, so each handshake is counted here in the client
  IP's window of the public rate limit, the very counter HTTP requests use
  (``lokaly_public.middleware.count_ip``: same key, same Lua script, one Redis command).
  Over the limit the socket is accepted and closed at once with 4429. The client IP is
  found as ``client_ip`` finds it: the peer's address, ``X-Forwarded-For`` only from a
  proxy in ``TRUSTED_PROXIES``.
- ``claim_slot`` / ``release_slot``: at most ``WS_MAX_SOCKETS_PER_USER`` open sockets per
  account, across every public process. A Redis sorted set per account holds the channel
  names of its open sockets, each scored by the expiry of the token it lives on; a claim
  first drops the members whose token has expired, so the slots of a process that died
  without closing its sockets come back at the latest when those tokens expire (a socket
  never outlives its token). One script, one round trip, per claim.

Both run their one Redis command where they are called: the count in the event loop, the
claim inside the consumer's one thread hop of the handshake, the release in the event loop
at close. Redis unreachable: both let the socket through (as the HTTP rate limit lets requests
through), and say so in the log.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings
from django.core.cache import caches

from lokaly_core.accounts import session_store
from lokaly_public.middleware import client_ip_of, count_ip

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


def _count_handshake(scope: dict[str, Any]) -> bool:
    """True when this handshake is over its IP's limit."""
    try:
        usage = count_ip(scope_client_ip(scope))
    except Exception:  # Redis down: serve rather than refuse everyone (as HTTP does)
        logger.warning("rate limit unavailable; socket let through", exc_info=True)
        return False
    return bool(usage and usage["should_limit"])


class HandshakeRateLimit:
    """Counts every WebSocket handshake against the client IP's public rate limit."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        # Counted in the event loop, not in a thread: one Redis command on the cache's
        # pool (~0.1 ms); a thread hop cost more than the command (bench/sockets.py cpu:
        # 0.6 ms more per handshake and close with the count and the release in threads).
        if scope["type"] == "websocket" and _count_handshake(scope):
            message = await receive()
            if message["type"] == "websocket.connect":
                await send({"type": "websocket.accept"})
                await send({"type": "websocket.close", "code": CLOSE_RATE_LIMITED})
            return
        await self.app(scope, receive, send)


# -- open sockets per account -------------------------------------------------------------

# KEYS[1] the account's set; ARGV: now, the token's expiry, the channel name, the cap.
# A member already in the set (a renewed token) is re-scored, never refused. KEYS[2] and
# KEYS[3], when given, are the session's revocation marker and the sentinel
# (``session_store.check_keys``): their EXISTS ride along, so a handshake's session check
# and its slot cost one round trip. Answers {claimed, revoked, warm}.
_CLAIM_SCRIPT = """
local checked = {0, 1}
if #KEYS == 3 then
  checked = {redis.call('EXISTS', KEYS[2]), redis.call('EXISTS', KEYS[3])}
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if not redis.call('ZSCORE', KEYS[1], ARGV[3]) then
  if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
    return {0, checked[1], checked[2]}
  end
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('EXPIREAT', KEYS[1], math.ceil(tonumber(last[2])) + 1)
return {1, checked[1], checked[2]}
"""
_scripts: dict[int, Any] = {}


def _client() -> Any:
    # The default cache's own client (its pool and timeouts), as the rate limiter uses it;
    # Django names it a private member.
    cache: Any = caches["default"]
    return cache._cache.get_client(write=True)


def _key(user_id: str) -> str:
    return str(caches["default"].make_and_validate_key(f"ws-sockets:{user_id}"))


def claim_slot(user_id: str, channel_name: str, expires_at: float) -> bool:
    """Hold one of the account's socket slots until ``expires_at`` (the token's expiry;
    called again with a renewed token's). False when the account has no slot left."""
    return claim_slot_checking_session(user_id, channel_name, expires_at, None)[0]


def claim_slot_checking_session(
    user_id: str, channel_name: str, expires_at: float, sid: str | None
) -> tuple[bool, tuple[str, int, int] | None]:
    """``claim_slot``, reading session ``sid``'s revocation marker in the same round trip:
    (claimed, the ``stashed`` answer for ``session_store.session_revoked``, or None when
    there is no sid or Redis did not answer: it then asks again itself)."""
    try:
        client = _client()
        script = _scripts.get(id(client))
        if script is None:
            script = _scripts[id(client)] = client.register_script(_CLAIM_SCRIPT)
        keys = [_key(user_id)]
        if sid is not None:
            keys += session_store.check_keys(sid)
        args = [time.time(), expires_at, channel_name, settings.WS_MAX_SOCKETS_PER_USER]
        claimed, revoked, warm = script(keys=keys, args=args)
    except Exception:
        logger.warning("socket slots unavailable; socket let through", exc_info=True)
        return True, None
    return bool(claimed), (None if sid is None else (sid, int(revoked), int(warm)))


def release_slot(user_id: str, channel_name: str) -> None:
    try:
        _client().zrem(_key(user_id), channel_name)
    except Exception:  # the slot frees itself at the token's expiry
        logger.warning("socket slot not released", exc_info=True)
