"""Exponential backoff with deterministic jitter, for every retry in Lokaly: event
redelivery (the worker), dispatch of an order nobody is free for, notification sends."""

from __future__ import annotations

import hashlib


def backoff_ms(attempt: int, key: str, *, base_ms: int, max_ms: int) -> int:
    """50-100 % of ``min(base_ms * 2^(attempt-1), max_ms)``; the share is drawn from
    ``key``, so one retry waits the same whoever computes it, and retries of different
    keys spread out instead of waking together."""
    ceiling = min(base_ms * 2 ** max(attempt - 1, 0), max_ms)
    jitter = int(hashlib.blake2s(key.encode(), digest_size=2).hexdigest(), 16) / 0xFFFF
    return int(ceiling * (0.5 + 0.5 * jitter))
