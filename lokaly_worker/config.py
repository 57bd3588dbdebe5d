"""The worker's configuration: streams, group, consumer name, batch size, retry policies."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from lokaly_worker.retry import RetryPolicy


@dataclass
class WorkerConfig:
    stream: str
    group: str
    dead_letter_stream: str
    consumer: str
    max_attempts: int
    retry_base_ms: int
    retry_max_ms: int
    claim_idle_ms: int
    block_ms: int = 1000
    # Entries read per XREADGROUP, handled together in one transaction (lokaly_worker.batch).
    batch: int = 64
    maintenance_every_s: float = 0.5
    prune_every_s: float = 60.0
    # Per event type, keys of RetryPolicy; missing keys take the three values above.
    retry_policies: dict[str, dict[str, int]] = field(default_factory=dict)

    def policy(self, event_type: str | None) -> RetryPolicy:
        values = {
            "max_attempts": self.max_attempts,
            "base_ms": self.retry_base_ms,
            "max_ms": self.retry_max_ms,
            **self.retry_policies.get(event_type or "", {}),
        }
        return RetryPolicy(**values)

    def retry_wait_ms(self, entry_id: str, event_type: str | None, delivered: int) -> int:
        """The backoff after ``delivered`` attempts, capped at the claim idle time: an entry
        idle that long is taken by XAUTOCLAIM anyway."""
        backoff = self.policy(event_type).backoff_ms(delivered, entry_id)
        return min(backoff, self.claim_idle_ms)

    def shortest_wait_ms(self) -> int:
        bases = [self.retry_base_ms]
        bases += [p["base_ms"] for p in self.retry_policies.values() if "base_ms" in p]
        return min(min(bases) // 2, self.claim_idle_ms)

    def validate(self) -> None:
        for event_type, overrides in self.retry_policies.items():
            unknown = set(overrides) - {"max_attempts", "base_ms", "max_ms"}
            if unknown or not all(isinstance(v, int) and v > 0 for v in overrides.values()):
                raise ImproperlyConfigured(
                    f"EVENT_RETRY_POLICIES[{event_type!r}] must map max_attempts, base_ms "
                    f"and max_ms to positive integers, not {overrides!r}"
                )

    @classmethod
    def from_settings(cls, consumer: str | None = None, **overrides: Any) -> WorkerConfig:
        values: dict[str, Any] = {
            "stream": settings.EVENT_STREAM,
            "group": settings.EVENT_CONSUMER_GROUP,
            "dead_letter_stream": settings.DEAD_LETTER_STREAM,
            "consumer": consumer or f"{socket.gethostname()}-{os.getpid()}",
            "max_attempts": settings.EVENT_MAX_ATTEMPTS,
            "retry_base_ms": settings.EVENT_RETRY_BASE_MS,
            "retry_max_ms": settings.EVENT_RETRY_MAX_MS,
            "claim_idle_ms": settings.EVENT_CLAIM_IDLE_MS,
            "retry_policies": dict(getattr(settings, "EVENT_RETRY_POLICIES", {})),
        }
        values.update(overrides)
        config = cls(**values)
        config.validate()
        return config
