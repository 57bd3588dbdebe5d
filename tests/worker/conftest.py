from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

import lokaly_worker.handlers  # noqa: F401  (registers the real handlers)
from lokaly_worker.consumer import StreamWorker, WorkerConfig
from lokaly_worker.registry import Registry, registry


def make_worker(reg: Registry | None = None, **overrides: Any) -> StreamWorker:
    config = WorkerConfig.from_settings(
        consumer=overrides.pop("consumer", "test-consumer"),
        block_ms=50,
        maintenance_every_s=0.05,
        **overrides,
    )
    return StreamWorker(config, reg or registry)


def run_until(worker: StreamWorker, predicate: Callable[[], Any], timeout: float = 15) -> Any:
    """Drive the worker loop in this thread until ``predicate()`` holds (or fail at deadline)."""
    worker.ensure_group()
    deadline = time.monotonic() + timeout
    while True:
        worker.tick()
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"worker did not reach {predicate} within {timeout}s")


@pytest.fixture
def worker() -> StreamWorker:
    return make_worker()
