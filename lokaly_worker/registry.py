"""Handlers by event type: ``@handles("order.created")`` registers a function.

A transactional handler runs inside one database transaction together with the event's
dedup marker, so its effects happen once even when the event is delivered twice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from lokaly_core.events import Envelope, EventPayload

HandlerFn = Callable[[Envelope, EventPayload], None]


@dataclass(frozen=True)
class Handler:
    name: str
    fn: HandlerFn
    transactional: bool


class Registry:
    def __init__(self) -> None:
        self._by_type: dict[str, list[Handler]] = defaultdict(list)

    def handles(
        self, *event_types: str, transactional: bool = True
    ) -> Callable[[HandlerFn], HandlerFn]:
        def register(fn: HandlerFn) -> HandlerFn:
            handler = Handler(
                name=f"{fn.__module__}.{fn.__name__}", fn=fn, transactional=transactional
            )
            for event_type in event_types:
                self._by_type[event_type].append(handler)
            return fn

        return register

    def for_type(self, event_type: str) -> list[Handler]:
        return list(self._by_type.get(event_type, ()))


registry = Registry()
handles = registry.handles
