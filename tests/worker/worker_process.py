"""A worker process for the fault-injection tests, with a misbehaving handler.

``python -m tests.worker.worker_process MODE CONSUMER``, environment as built by
``tests.worker.faults.worker_env``. It runs the real ``StreamWorker`` with the real
graceful shutdown of ``run_worker``, but its own registry: one handler for
``picking.started`` that appends ``time.time()`` to the Redis list ``FAULT_RECORD_KEY``
when it starts, then

- ``crash``: kills its own process (SIGKILL), as a segfault or the OOM killer would;
- ``slow``: sleeps ``FAULT_SLOW_S`` seconds, then commits its effect (a ``ProcessedEvent``
  row with handler ``slow-effect``) in the event's transaction.

Not a test module: nothing here is named ``test_*``.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lokaly_admin.settings.test")
django.setup()

from django.conf import settings  # noqa: E402

from lokaly_core.events import Envelope, EventPayload, PickingStarted  # noqa: E402
from lokaly_core.outbox.models import ProcessedEvent  # noqa: E402
from lokaly_core.redis_client import get_redis  # noqa: E402
from lokaly_worker.consumer import StreamWorker, WorkerConfig  # noqa: E402
from lokaly_worker.registry import Registry  # noqa: E402
from lokaly_worker.shutdown import install_graceful_shutdown  # noqa: E402


def build_registry(mode: str) -> Registry:
    reg = Registry()
    record_key = os.environ["FAULT_RECORD_KEY"]

    @reg.handles(PickingStarted)
    def misbehave(envelope: Envelope, event: EventPayload) -> None:
        get_redis().rpush(record_key, repr(time.time()))
        if mode == "crash":
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(float(os.environ.get("FAULT_SLOW_S", "2")))
        ProcessedEvent.objects.create(event_id=uuid.uuid4(), handler="slow-effect")

    return reg


def main() -> None:
    mode, consumer = sys.argv[1], sys.argv[2]
    config = WorkerConfig.from_settings(consumer, block_ms=100, maintenance_every_s=0.05)
    worker = StreamWorker(config, build_registry(mode))
    install_graceful_shutdown(worker, timeout_s=settings.WORKER_SHUTDOWN_TIMEOUT_S)
    worker.run()


if __name__ == "__main__":
    main()
