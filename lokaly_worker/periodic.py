"""Periodic work, in one place: every task the worker runs on a timer.

A task is registered with ``@every_tick`` (each maintenance turn of the worker loop,
``WorkerConfig.maintenance_every_s``, about twice a second) or ``@every(seconds)``; the
worker adds its own (the outbox sweep, pruning idempotency keys, the retry scan of failed
and abandoned entries). ``PeriodicRunner`` runs the due ones in registration order; a
failing task is logged and runs again when next due, never stopping the loop. Several
workers doing the same is harmless (``SKIP LOCKED`` rows, idempotent trims and deletes).

Where each task is registered: the outbox sweep, idempotency pruning and the retry scan
in ``lokaly_worker.consumer``; dispatch retries in ``lokaly_worker.handlers``; reconcile,
trimming and retention in ``lokaly_worker.maintenance``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from django.db import close_old_connections

logger = logging.getLogger("lokaly.worker")

TaskFn = Callable[[], object]


class Interval:
    """True at most once per ``seconds()`` seconds, the first time one interval after
    the first call (so a starting worker does its reads and sweep first), or at the
    first call with ``at_start``."""

    def __init__(self, seconds: Callable[[], float], *, at_start: bool = False) -> None:
        self.seconds = seconds
        self.at_start = at_start
        self.next_at: float | None = None

    def due(self) -> bool:
        now = time.monotonic()
        if self.next_at is None and not self.at_start:
            self.next_at = now + self.seconds()
            return False
        if self.next_at is not None and now < self.next_at:
            return False
        self.next_at = now + self.seconds()
        return True


@dataclass
class PeriodicTask:
    """``fn`` run every maintenance turn (``interval`` None) or at most once an interval."""

    fn: TaskFn
    interval: Interval | None = None
    name: str = field(default="")

    def __post_init__(self) -> None:
        self.name = self.name or getattr(self.fn, "__name__", repr(self.fn))

    @property
    def __name__(self) -> str:  # reads like the function it wraps (logs, tests)
        return self.name

    def due(self) -> bool:
        return self.interval is None or self.interval.due()


class PeriodicRunner:
    def __init__(self, tasks: Sequence[PeriodicTask]) -> None:
        self.tasks = list(tasks)

    def run_due(self) -> None:
        for task in self.tasks:
            if not task.due():
                continue
            try:
                task.fn()
            except Exception:
                logger.exception("periodic task failed; will try again", extra={"task": task.name})
                close_old_connections()
