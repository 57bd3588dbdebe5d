"""Handlers by event class: ``@handles(OrderCreated)`` registers a function of that event.

A handler takes the envelope (its id and type, for dedup and logs) and the typed payload:
``@handles(OrderCreated)`` accepts ``Callable[[Envelope, OrderCreated], None]``, so the
handler needs no ``isinstance`` check and mypy rejects one written for another event.
Registered under the contract's type name (``OrderCreated.TYPE``), a handler only ever
gets the payload ``Envelope.parse`` makes for that name, an instance of that class. A
handler of several events takes their common base (``EventPayload``).

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
from typing import Any, Generic, TypeVar

from lokaly_core.events import EVENT_TYPES, Envelope, EventPayload

E = TypeVar("E", bound=EventPayload)
TaskFn = Callable[[], object]


@dataclass(frozen=True)
class Handler(Generic[E]):
    name: str
    fn: Callable[[Envelope, E], None]
    transactional: bool
    when: Callable[[E], bool] | None = None

    def wants(self, event: E) -> bool:
        return self.when is None or self.when(event)


class Registry:
    def __init__(self) -> None:
        # Handler[Any]: the list under "order.created" holds handlers of OrderCreated; the
        # type name (Envelope.parse) keeps that pairing, which the dict's type cannot say.
        self._by_type: dict[str, list[Handler[Any]]] = defaultdict(list)
        self._periodic: list[TaskFn] = []

    def handles(
        self,
        *events: type[E],
        transactional: bool = True,
        when: Callable[[E], bool] | None = None,
    ) -> Callable[[Callable[[Envelope, E], None]], Callable[[Envelope, E], None]]:
        for event in events:
            if EVENT_TYPES.get(event.TYPE) is not event:
                raise TypeError(f"{event.__name__} is not an event contract (EVENT_TYPES)")

        def register(fn: Callable[[Envelope, E], None]) -> Callable[[Envelope, E], None]:
            handler = Handler(
                name=f"{fn.__module__}.{fn.__name__}",
                fn=fn,
                transactional=transactional,
                when=when,
            )
            for event in events:
                self._by_type[event.TYPE].append(handler)
            return fn

        return register

    def for_type(self, event_type: str) -> list[Handler[Any]]:
        return list(self._by_type.get(event_type, ()))

    def every_tick(self, fn: TaskFn) -> TaskFn:
        self._periodic.append(fn)
        return fn

    def periodic_tasks(self) -> list[TaskFn]:
        return list(self._periodic)


registry = Registry()
handles = registry.handles
every_tick = registry.every_tick
