"""The worker's slow periodic tasks: reconcile what Redis lost, trim, prune.

Registered with ``@every`` (``lokaly_worker.periodic``), and imported by ``run_worker``
(not by ``lokaly_worker.handlers``: in-process tests drive workers without them and call
the functions below directly). Each task runs at most once per its interval per worker
process, the first time one interval after start-up; several workers doing the same is
harmless (``SKIP LOCKED`` rows, idempotent trims and deletes).
"""

from __future__ import annotations

import logging

from django.conf import settings

from lokaly_core.outbox import reconcile, retention
from lokaly_worker.registry import every

logger = logging.getLogger("lokaly.worker.maintenance")

RECONCILE_LIMIT = 2_000


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


@every(lambda: settings.EVENT_RECONCILE_EVERY_S)
def reconcile_when_due() -> None:
    reconcile_lost_events()


@every(lambda: settings.RETENTION_EVERY_S)
def trim_and_prune_when_due() -> None:
    trim_and_prune()
