"""The worker's slow periodic tasks: reconcile what Redis lost, trim, prune.

Registered with ``@every_tick`` like the dispatch timer, and imported by ``run_worker``
(not by ``lokaly_worker.handlers``: in-process tests drive workers without them and call
the functions below directly). Each task runs at most once per its interval per worker
process, the first time one interval after start-up; several workers doing the same is
harmless (``SKIP LOCKED`` rows, idempotent trims and deletes).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.conf import settings

from lokaly_core.outbox import reconcile, retention
from lokaly_worker.registry import every_tick

logger = logging.getLogger("lokaly.worker.maintenance")

RECONCILE_LIMIT = 2_000


class Interval:
    """True at most once per ``seconds()`` seconds, the first time one interval after
    the first call (so a starting worker does its reads and sweep first)."""

    def __init__(self, seconds: Callable[[], float]) -> None:
        self.seconds = seconds
        self.next_at: float | None = None

    def due(self) -> bool:
        now = time.monotonic()
        if self.next_at is None:
            self.next_at = now + self.seconds()
            return False
        if now < self.next_at:
            return False
        self.next_at = now + self.seconds()
        return True


def reconcile_lost_events() -> int:
    """Publish again the unsettled events past ``EVENT_RECONCILE_AFTER_S`` that are gone
    from the stream; how many."""
    result = reconcile.reconcile(
        older_than_s=settings.EVENT_RECONCILE_AFTER_S, limit=RECONCILE_LIMIT
    )
    if result.republished:
        logger.warning(
            "events lost from the stream published again",
            extra={"republished": result.republished, "checked": result.checked},
        )
    return result.republished


def trim_and_prune() -> dict[str, int]:
    """Trim both streams and prune the outbox and dedup markers (idempotency keys are
    pruned by the consumer's own maintenance)."""
    counts = {
        "stream_trimmed": retention.trim_stream(),
        "dead_letters_trimmed": retention.trim_dead_letters(),
        "outbox_pruned": retention.prune_outbox(),
        "dedup_pruned": retention.prune_processed_events(),
    }
    if any(counts.values()):
        logger.info("trimmed and pruned", extra=counts)
    return counts


_reconcile_interval = Interval(lambda: settings.EVENT_RECONCILE_EVERY_S)
_retention_interval = Interval(lambda: settings.RETENTION_EVERY_S)


@every_tick
def reconcile_when_due() -> None:
    if _reconcile_interval.due():
        reconcile_lost_events()


@every_tick
def trim_and_prune_when_due() -> None:
    if _retention_interval.due():
        trim_and_prune()
