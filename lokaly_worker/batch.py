"""The batch runner: the transactional handlers of a batch of entries in one transaction.

For a batch read with one XREADGROUP (entries in stream order):

1. one transaction: the dedup markers of every (event, handler) the batch calls for, in
   one statement; then each handler, in the order the batch first needs it, over the
   events it has not handled yet: its set-based form (``batch=``) once for all of them,
   or its per-event form one by one. The worker owns this transaction; handlers and the
   units of work they open join it and never commit or roll it back themselves;
2. after the commit, the non-transactional handlers (socket broadcasts) event by event;
   one that raises fails its own event only (retried: the transactional part is then a
   no-op thanks to the markers).

When the transaction fails, a deadlock or serialization failure (another worker's batch,
an API request) runs it again at once, up to ``TRANSIENT_RETRIES`` times. Any other error
isolates the event that caused it, so that it is retried and dead-lettered alone while
its neighbours commit: when a per-event handler raised, that event failed its attempt and
the batch runs again without it (the poison event's handler runs once per attempt, as
without batches); when a set-based form (or the marker statement) raised, the culprit is
unknown and the batch is split in halves, down to single events. The caller acks what
succeeded.

Handlers of different events in one batch may run in another order than the stream's:
fine, since an event's consequences are published only after its transaction committed,
so they always come in a later batch.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from lokaly_core.events import Envelope, EventPayload
from lokaly_worker import dedup
from lokaly_worker.registry import Handler
from lokaly_worker.retry import is_transient

logger = logging.getLogger("lokaly.worker")

TRANSIENT_RETRIES = 5


@dataclass
class Item:
    """One entry of a batch, parsed, with the handlers that want it."""

    entry_id: str
    fields: dict[bytes, bytes]
    envelope: Envelope
    payload: EventPayload | None  # None: it could not be parsed (item.error says why)
    attempt: int
    handlers: list[Handler[Any]]
    error: str | None = None
    exc: BaseException | None = field(default=None, repr=False)

    @property
    def transactional(self) -> list[Handler[Any]]:
        return [h for h in self.handlers if h.transactional]


class _EventFailed(Exception):
    """A per-event handler raised for ``item`` (the cause is chained)."""

    def __init__(self, item: Item) -> None:
        super().__init__(item.entry_id)
        self.item = item


class BatchRunner:
    def __init__(self) -> None:
        self.transactions = 0  # committed or not, for the benchmark and tests
        self.splits = 0

    def run(self, items: list[Item]) -> None:
        """Run the items' handlers; an item that failed gets ``error`` (and ``exc``)."""
        self._commit_or_split([i for i in items if i.transactional])
        for item in items:
            if item.error is None:
                self._after_commit(item)

    def _commit_or_split(self, items: list[Item]) -> None:
        if not items:
            return
        for retry in range(TRANSIENT_RETRIES + 1):
            try:
                self._transaction(items)
                return
            except Exception as raised:
                culprit = raised.item if isinstance(raised, _EventFailed) else None
                exc = raised.__cause__ or raised if culprit is not None else raised
                if is_transient(exc) and retry < TRANSIENT_RETRIES:
                    logger.info(
                        "batch lost a race (deadlock or serialization); running it again",
                        extra={"entries": len(items), "retry": retry + 1, "error": str(exc)},
                    )
                    time.sleep(random.uniform(0, 0.005 * 2**retry))  # noqa: S311 - jitter
                    continue
                failure = exc
                break
        if culprit is not None:
            culprit.exc = failure
            culprit.error = f"{type(failure).__name__}: {failure}"
            self._commit_or_split([i for i in items if i is not culprit])
            return
        if len(items) == 1:
            items[0].exc = failure
            items[0].error = f"{type(failure).__name__}: {failure}"
            return
        self.splits += 1
        logger.info(
            "batch failed; splitting it",
            extra={"entries": len(items), "error": f"{type(failure).__name__}: {failure}"},
        )
        middle = len(items) // 2
        self._commit_or_split(items[:middle])
        self._commit_or_split(items[middle:])

    def _transaction(self, items: list[Item]) -> None:
        self.transactions += 1
        with transaction.atomic():
            wanted = [(item, h) for item in items for h in item.transactional]
            fresh = dedup.mark_processed([(i.envelope.event_id, h.name) for i, h in wanted])
            groups: dict[str, tuple[Handler[Any], list[Item]]] = {}
            for item, handler in wanted:
                marker = (item.envelope.event_id, handler.name)
                if marker not in fresh:
                    logger.info(
                        "duplicate delivery skipped",
                        extra={"event_id": str(item.envelope.event_id), "handler": handler.name},
                    )
                    continue
                fresh.discard(marker)  # the same event twice in one batch runs once
                groups.setdefault(handler.name, (handler, []))[1].append(item)
            for handler, group in groups.values():
                if handler.batch is not None:
                    handler.batch([(i.envelope, i.payload) for i in group])
                else:
                    for item in group:
                        try:
                            handler.fn(item.envelope, item.payload)
                        except Exception as exc:
                            raise _EventFailed(item) from exc

    def _after_commit(self, item: Item) -> None:
        for handler in item.handlers:
            if handler.transactional:
                continue
            try:
                handler.fn(item.envelope, item.payload)
            except Exception as exc:
                item.exc = exc
                item.error = f"{type(exc).__name__}: {exc}"
                return
