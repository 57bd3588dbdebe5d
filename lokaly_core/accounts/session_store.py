"""Login sessions: creation, revocation, and the per-request "is this session revoked?".

PostgreSQL holds every session (``LoginSession``) and is the truth. Redis holds, for each
session revoked within the refresh lifetime, a marker ``session-revoked:<sid>`` (expiring
with the refresh lifetime: after it no token of the session is valid anyway), and one
sentinel key ``sessions:warm`` without expiry. A request asks Redis both in the same round
trip (on the public server pipelined into the rate limiter's script,
``lokaly_public.middleware``):

- marker present: revoked;
- marker absent, sentinel present: not revoked;
- sentinel absent ("Redis forgot": flushed, restarted without persistence, a new
  instance): the sessions revoked within the refresh lifetime are read from PostgreSQL
  (one query, which answers for this session too) and their markers written again before
  the sentinel is (so a flush fails closed; docs/reliability.md, "Sessions and a Redis
  flush");
- Redis unreachable: PostgreSQL answers for that session.

A revocation writes the marker at once and again after PostgreSQL commits; a flush before
the commit is covered by the second write, one after it by the sentinel.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.db import transaction
from django.utils import timezone

from lokaly_core.accounts import revocation
from lokaly_core.accounts.models import LoginSession, User

logger = logging.getLogger("lokaly.accounts")

# What the marker check stashes on a request for the authentication class:
# ``(sid, revoked, warm)`` as Redis answered for that sid.
REQUEST_ATTR = "_lokaly_session_check"

_SENTINEL = "sessions:warm"
_CHECK_SCRIPT = """
return {redis.call('EXISTS', KEYS[1]), redis.call('EXISTS', KEYS[2])}
"""
_scripts: dict[int, Any] = {}
# Markers outlive the refresh lifetime by this much (clocks and leeway).
_MARKER_SLACK_SECONDS = 60


def _cache() -> Any:
    return caches["default"]


def client() -> Any:
    """The Django cache's own Redis client (its pool and timeouts)."""
    return _cache()._cache.get_client(write=True)


def marker_key(sid: str) -> str:
    # ``make_key`` without the memcached-style validation (about 8 us a key, on every
    # request): a sid is at most 64 characters (``tokens.peek_sid``), a uuid once verified.
    return str(_cache().make_key(f"session-revoked:{sid}"))


def sentinel_key() -> str:
    return str(_cache().make_key(_SENTINEL))


def marker_ttl() -> int:
    return int(settings.JWT_REFRESH_TTL_SECONDS) + _MARKER_SLACK_SECONDS


# -- sessions ---------------------------------------------------------------------------


def session_start(user: User, realm: str) -> LoginSession:
    return LoginSession.objects.create(user=user, realm=realm)


def session_revoke(sid: object, *, reason: str) -> bool:
    """Revoke one session (idempotent); True when this call revoked it. ``reason`` is
    kept on the row (``logout``, ``refresh_reused``) and the account's sockets are told."""
    try:
        sid_uuid = uuid.UUID(str(sid))
    except ValueError:
        return False
    with transaction.atomic():
        session = LoginSession.objects.select_for_update().filter(pk=sid_uuid).first()
        if session is None or session.revoked_at is not None:
            if session is not None:
                _write_markers([str(session.pk)])
            return False
        session.revoked_at = timezone.now()
        session.revoked_reason = reason[:32]
        session.save(update_fields=["revoked_at", "revoked_reason"])
        user_id = session.user_id
        _write_markers_now_and_after_commit([str(sid_uuid)])
        # ``revocation``'s reasons: a logout, or any other end of one session.
        announced = "logout" if reason == "logout" else "session_revoked"
        revocation.announce_account_change(user_id, reason=announced, session_id=sid_uuid)
    return True


def sessions_revoke_all(
    user_id: uuid.UUID | str, *, reason: str, keep: uuid.UUID | str | None = None
) -> int:
    """Revoke every open session of an account except ``keep``; how many were revoked."""
    with transaction.atomic():
        qs = LoginSession.objects.select_for_update().filter(
            user_id=user_id, revoked_at__isnull=True
        )
        if keep is not None:
            qs = qs.exclude(pk=keep)
        sids = [str(pk) for pk in qs.values_list("pk", flat=True)]
        if not sids:
            return 0
        LoginSession.objects.filter(pk__in=sids).update(
            revoked_at=timezone.now(), revoked_reason=reason[:32]
        )
        _write_markers_now_and_after_commit(sids)
        revocation.announce_account_change(str(user_id), reason=reason)
    return len(sids)


def _write_markers_now_and_after_commit(sids: list[str]) -> None:
    """At once (requests see the revocation even before the commit: failing closed if the
    transaction then rolls back), and again after the commit (a Redis flush between the
    first write and the commit re-warms from PostgreSQL without this session)."""
    _write_markers(sids)
    transaction.on_commit(lambda: _write_markers(sids))


def _write_markers(sids: Iterable[str]) -> None:
    """Set the Redis markers; a failure is logged: the sentinel/PostgreSQL path covers
    a lost marker only after a flush, so say it loudly."""
    try:
        pipe = client().pipeline(transaction=False)
        for sid in sids:
            pipe.set(marker_key(sid), 1, ex=marker_ttl())
        pipe.execute()
    except Exception:
        logger.error("session revocation marker not written", exc_info=True)


def mark_warm() -> None:
    """Set the sentinel without re-warming: for a Redis known to hold every marker (the
    test suite's, emptied together with a database that has no revoked session)."""
    client().set(sentinel_key(), 1)


# -- the check --------------------------------------------------------------------------


def check_keys(sid: str, cache: Any = None) -> list[str]:
    """The Redis keys a request's check reads: ``[marker, sentinel]``; ``cache``: the
    default cache when the caller holds it already (``caches[...]`` costs a context-local
    lookup per call)."""
    cache = cache or _cache()
    return [str(cache.make_key(f"session-revoked:{sid}")), str(cache.make_key(_SENTINEL))]


def stashed_answer(sid: str, stashed: tuple[str, int, int] | None) -> bool | None:
    """``session_revoked``'s answer from ``stashed`` alone, without I/O; None when it
    takes more (no stash for ``sid``, or Redis forgot the revocations)."""
    if stashed is None or stashed[0] != sid:
        return None
    revoked, warm = stashed[1], stashed[2]
    if revoked:
        return True
    return False if warm else None


def session_revoked(sid: str, stashed: tuple[str, int, int] | None = None) -> bool:
    """Whether session ``sid`` is revoked. ``stashed``: the answer of an earlier round
    trip on this request (``(sid, revoked, warm)``); without one, one Redis call."""
    if stashed is None or stashed[0] != sid:
        try:
            stashed = (sid, *_check(sid))
        except Exception:
            logger.warning("session check: Redis unavailable, asking PostgreSQL", exc_info=True)
            return _revoked_in_db(sid)
    answer = stashed_answer(sid, stashed)
    if answer is not None:
        return answer
    # Redis forgot: the sessions revoked within the refresh lifetime answer (one revoked
    # earlier has no token left that has not expired) and are written back.
    return sid in rewarm()


def _check(sid: str) -> tuple[int, int]:
    redis = client()
    script = _scripts.get(id(redis))
    if script is None:
        script = _scripts[id(redis)] = redis.register_script(_CHECK_SCRIPT)
    revoked, warm = script(keys=check_keys(sid))
    return int(revoked), int(warm)


def _revoked_in_db(sid: str) -> bool:
    try:
        sid_uuid = uuid.UUID(str(sid))
    except ValueError:
        return True
    return not LoginSession.objects.filter(pk=sid_uuid, revoked_at__isnull=True).exists()


def rewarm() -> set[str]:
    """Write the markers of every session revoked within the refresh lifetime, then the
    sentinel; those sessions' ids. Safe to run concurrently (writes are idempotent)."""
    since = timezone.now() - timedelta(seconds=marker_ttl())
    sids = [
        str(pk)
        for pk in LoginSession.objects.filter(revoked_at__gte=since).values_list("pk", flat=True)
    ]
    try:
        redis = client()
        pipe = redis.pipeline(transaction=False)
        for sid in sids:
            pipe.set(marker_key(sid), 1, ex=marker_ttl())
        pipe.set(sentinel_key(), 1)
        pipe.execute()
    except Exception:
        logger.warning("session markers not re-warmed", exc_info=True)
    else:
        logger.warning("session revocation markers re-warmed", extra={"markers": len(sids)})
    return set(sids)
