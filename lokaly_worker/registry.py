"""Handlers by event class: ``@handles(OrderCreated)`` registers a function of that event.

A handler takes the envelope (its id and type, for dedup and logs) and the typed payload:
``@handles(OrderCreated)`` accepts ``Callable[[Envelope, OrderCreated], None]``, so the
handler needs no ``isinstance`` check and mypy rejects one written for another event.
Registered under the contract's type name (``OrderCreated.TYPE``), a handler only ever
gets the payload ``Envelope.parse`` makes for that name, an instance of that class. A
handler of several events takes their common base (``EventPayload``).

The worker reads entries in batches; the transactional handlers of a batch's events run
in one database transaction together with their dedup markers, so their effects happen
once even when an event is delivered twice (``lokaly_worker.batch``). ``batch=`` gives a
handler a set-based form taking the batch's ``(envelope, event)`` pairs in stream order
(one statement for all of them instead of one per event); without it the batch runs the
handler event by event. Either form joins the worker's transaction and never commits or
rolls it back itself. Non-transactional handlers (socket broadcasts) run after the
commit. ``when=`` narrows a handler to the events it acts on: for the others the worker
writes no marker.

``@every_tick`` and ``@every(seconds)`` register periodic tasks (``lokaly_worker.periodic``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from lokaly_core.events import EVENT_TYPES, Envelope, EventPayload
from lokaly_core.outbox.relay import CommitListener
from lokaly_worker.periodic import Interval, PeriodicTask, TaskFn

E = TypeVar("E", bound=EventPayload)
BatchFn = Callable[[list[tuple[Envelope, E]]], None]


@dataclass(frozen=True)
class Handler(Generic[E]):
    name: str
    fn: Callable[[Envelope, E], None]
    transactional: bool
    when: Callable[[E], bool] | None = None
    batch: BatchFn[E] | None = None

    def wants(self, event: E) -> bool:
        return self.when is None or self.when(event)


class Registry:
    def __init__(self) -> None:
        # Handler[Any]: the list under "order.created" holds handlers of OrderCreated; the
        # type name (Envelope.parse) keeps that pairing, which the dict's type cannot say.
        self._by_type: dict[str, list[Handler[Any]]] = defaultdict(list)
        self._periodic: list[PeriodicTask] = []
        self._commit_listeners: list[CommitListener] = []

    def handles(
        self,
        *events: type[E],
        transactional: bool = True,
        when: Callable[[E], bool] | None = None,
        batch: BatchFn[E] | None = None,
    ) -> Callable[[Callable[[Envelope, E], None]], Callable[[Envelope, E], None]]:
        if batch is not None and not transactional:
            raise TypeError("a set-based form (batch=) runs in the batch's transaction")
        for event in events:
            if EVENT_TYPES.get(event.TYPE) is not event:
                raise TypeError(f"{event.__name__} is not an event contract (EVENT_TYPES)")

        def register(fn: Callable[[Envelope, E], None]) -> Callable[[Envelope, E], None]:
            handler = Handler(
                name=f"{fn.__module__}.{fn.__name__}",
                fn=fn,
                transactional=transactional,
                when=when,
                batch=batch,
            )
            for event in events:
                self._by_type[event.TYPE].append(handler)
            return fn

        return register

    def for_type(self, event_type: str) -> list[Handler[Any]]:
        return list(self._by_type.get(event_type, ()))

    def every_tick(self, fn: TaskFn) -> TaskFn:
        self._periodic.append(PeriodicTask(fn))
        return fn

    def every(
        self, seconds: Callable[[], float], *, at_start: bool = False
    ) -> Callable[[TaskFn], TaskFn]:
        """At most once per ``seconds()`` (read each time: settings at call time), the
        first time one interval after start-up unless ``at_start``."""

        def register(fn: TaskFn) -> TaskFn:
            self._periodic.append(PeriodicTask(fn, Interval(seconds, at_start=at_start)))
            return fn

        return register

    def periodic_tasks(self) -> list[PeriodicTask]:
        return list(self._periodic)

    def on_commit(self, fn: CommitListener) -> CommitListener:
        """Called with the events of each transaction this worker commits, right after
        the commit (``lokaly_core.outbox.relay.listening_to_commits``), while it runs."""
        self._commit_listeners.append(fn)
        return fn

    def commit_listeners(self) -> list[CommitListener]:
        return list(self._commit_listeners)


registry = Registry()
handles = registry.handles
every_tick = registry.every_tick
every = registry.every
on_commit = registry.on_commit
