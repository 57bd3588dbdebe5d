"""``Idempotency-Key`` for order creation: the first response is stored and replayed.

The key row, with the response, is written in the same statement as the order
(``lokaly_core.orders.intake``). A request whose key is stored replays that response, or
is refused when its body differs; a concurrent request with the same key waits on the
unique index for the first one's statement, writes nothing (``KeyTaken``) and replays.
A request that was refused stored nothing, so a retry runs again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import connection
from django.utils import timezone

from lokaly_core.domain.errors import DomainError, ErrorCode
from lokaly_core.orders.models import IdempotencyKey

_STORED_SQL = (
    "SELECT request_hash, response_status, response_body "  # noqa: S608 - the table is ours
    f"FROM {IdempotencyKey._meta.db_table} WHERE customer_id = %s AND key = %s"
)


class IdempotencyConflict(DomainError):
    code = ErrorCode.IDEMPOTENCY_CONFLICT
    default_message = "This Idempotency-Key was already used with a different request body."


def request_fingerprint(data: Any) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Stored:
    fingerprint: str
    status: int
    body: dict[str, Any]


def stored_response(*, customer_id: UUID, key: str) -> Stored | None:
    """The response stored under (customer, key), if any (one indexed read)."""
    with connection.cursor() as cursor:
        cursor.execute(_STORED_SQL, [customer_id, key])
        row = cursor.fetchone()
    if row is None:
        return None
    fingerprint, status, body = row
    if isinstance(body, str):  # Django's connection loads jsonb as text (JSONField decodes)
        body = json.loads(body)
    return Stored(fingerprint=fingerprint, status=status or 200, body=body or {})


def replay(stored: Stored, *, key: str, fingerprint: str) -> tuple[int, dict[str, Any]]:
    """The stored (status, body); raises ``IdempotencyConflict`` for another body."""
    if stored.fingerprint != fingerprint:
        raise IdempotencyConflict(details={"idempotency_key": key})
    return stored.status, stored.body


def prune_expired(*, batch: int = 1000) -> int:
    """Delete keys older than ``IDEMPOTENCY_KEY_TTL_HOURS`` (at most ``batch``); how many."""
    cutoff = timezone.now() - timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)
    ids = list(
        IdempotencyKey.objects.filter(created_at__lt=cutoff).values_list("pk", flat=True)[:batch]
    )
    if not ids:
        return 0
    deleted, _ = IdempotencyKey.objects.filter(pk__in=ids).delete()
    return deleted
