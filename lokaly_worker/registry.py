"""Handlers by event type: ``@handles("order.created")`` registers a function.

The transactional handlers of an event run in one database transaction together with
their dedup markers, so its effects happen once even when the event is delivered twice.
``when=`` narrows a handler to the events it acts on: for the others the worker opens no
transaction and writes no marker.

``@every_tick`` registers a periodic task the worker runs in its maintenance turn (about
twice a second); a failing task is logged and run again at the next turn.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from lokaly_core.events import Envelope, EventPayload

HandlerFn = Callable[[Envelope, EventPayload], None]
Predicate = Callable[[EventPayload], bool]
TaskFn = Callable[[], object]


@dataclass(frozen=True)
class Handler:
    name: str
    fn: HandlerFn
    transactional: bool
    when: Predicate | None = None

    def wants(self, event: EventPayload) -> bool:
        return self.when is None or self.when(event)


class Registry:
    def __init__(self) -> None:
        self._by_type: dict[str, list[Handler]] = defaultdict(list)
        self._periodic: list[TaskFn] = []

    def handles(
        self, *event_types: str, transactional: bool = True, when: Predicate | None = None
    ) -> Callable[[HandlerFn], HandlerFn]:
        def register(fn: HandlerFn) -> HandlerFn:
            handler = Handler(
                name=f"{fn.__module__}.{fn.__name__}",
                fn=fn,
                transactional=transactional,
                when=when,
            )
            for event_type in event_types:
                self._by_type[event_type].append(handler)
            return fn

        return register

    def for_type(self, event_type: str) -> list[Handler]:
        return list(self._by_type.get(event_type, ()))

    def every_tick(self, fn: TaskFn) -> TaskFn:
        self._periodic.append(fn)
        return fn

    def periodic_tasks(self) -> list[TaskFn]:
        return list(self._periodic)


registry = Registry()
handles = registry.handles
every_tick = registry.every_tick
