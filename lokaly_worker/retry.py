"""Retry policy: backoff per event type, the failure notes that say an entry failed (and
why), and which database errors are retried at once rather than counted as an attempt."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, cast

import redis
from django.db import DatabaseError

from lokaly_core.domain.backoff import backoff_ms

FAILURES_KEY_SUFFIX = ":failures"
STOPPED_MID_HANDLER = "the worker stopped while handling it (killed, crashed or too slow)"
# SQLSTATE 40P01 deadlock_detected, 40001 serialization_failure: two workers' batches (or a
# batch and an API request) lost a race; running the same transaction again succeeds.
TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    base_ms: int
    max_ms: int

    def backoff_ms(self, attempt: int, entry_id: str) -> int:
        return backoff_ms(attempt, entry_id, base_ms=self.base_ms, max_ms=self.max_ms)


def is_transient(exc: BaseException) -> bool:
    """A deadlock or serialization failure (psycopg's sqlstate, through Django's wrapper)."""
    if not isinstance(exc, DatabaseError):
        return False
    cause = exc.__cause__ or exc
    return getattr(cause, "sqlstate", None) in TRANSIENT_SQLSTATES


class FailureNotes:
    """A Redis hash ``<stream>:failures``: entry id -> ``{"type", "error"}`` of its last
    failed attempt. An entry with a note is waiting for its backoff; one pending without a
    note is in flight (or its consumer died)."""

    def __init__(self, client: redis.Redis, stream: str) -> None:
        self.redis = client
        self.key = stream + FAILURES_KEY_SUFFIX

    def record(self, entry_id: str, event_type: str, error: str) -> None:
        note = json.dumps({"type": event_type, "error": error[:2000]})
        self.redis.hset(self.key, entry_id, note)

    def get(self, entry_id: str) -> dict[str, Any] | None:
        raw = cast("bytes | None", self.redis.hget(self.key, entry_id))
        return None if raw is None else parse_failure(raw)

    def many(self, entry_ids: list[str]) -> list[bytes | None]:
        return cast("list[bytes | None]", self.redis.hmget(self.key, entry_ids))

    def last_error(self, entry_id: str) -> str | None:
        failure = self.get(entry_id)
        return None if failure is None else str(failure["error"])


def parse_failure(raw: bytes | str) -> dict[str, Any]:
    """A failure record: ``{"type", "error"}`` (a bare error string before policies)."""
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if isinstance(value, dict) and "error" in value:
        return value
    return {"type": None, "error": raw.decode() if isinstance(raw, bytes) else raw}
