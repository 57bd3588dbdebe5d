"""``Idempotency-Key`` for order creation: the first response is stored and replayed.

The key row is inserted in the same transaction as the order. A concurrent request with
the same key waits on that insert (the unique index) and then replays the stored
response; if the first transaction rolled back, the retry runs the action itself.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from lokaly_core.domain.errors import DomainError, ErrorCode
from lokaly_core.orders.models import IdempotencyKey


class IdempotencyConflict(DomainError):
    code = ErrorCode.IDEMPOTENCY_CONFLICT
    default_message = "This Idempotency-Key was already used with a different request body."


def request_fingerprint(data: Any) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def run_once(
    *,
    customer_id: UUID,
    key: str,
    fingerprint: str,
    action: Callable[[], tuple[int, dict[str, Any]]],
) -> tuple[int, dict[str, Any], bool]:
    """(status, body, replayed): run ``action`` once per (customer, key)."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {IdempotencyKey._meta.db_table} "  # noqa: S608 - table name is ours
                "(customer_id, key, request_hash, created_at) VALUES (%s, %s, %s, now()) "
                "ON CONFLICT (customer_id, key) DO NOTHING RETURNING id",
                [customer_id, key, fingerprint],
            )
            row = cursor.fetchone()
        if row is None:
            stored = IdempotencyKey.objects.get(customer_id=customer_id, key=key)
            if stored.request_hash != fingerprint:
                raise IdempotencyConflict(details={"idempotency_key": key})
            return stored.response_status or 200, stored.response_body or {}, True
        status, body = action()
        IdempotencyKey.objects.filter(pk=row[0]).update(response_status=status, response_body=body)
    return status, body, False


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
