"""Graceful shutdown of a worker process on SIGTERM/SIGINT, within a deadline.

The first signal stops the worker from reading: it finishes the events it holds, acks them
and returns, and the process exits 0. If that takes longer than the deadline (a handler
stuck on a lock, a slow receiver), the process exits with ``EXIT_DEADLINE`` at once: the
open transaction dies with the connection and the event in flight stays pending, to be
claimed by another worker (``EVENT_CLAIM_IDLE_MS``) or by this consumer when it restarts.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType

from lokaly_worker.consumer import StreamWorker

logger = logging.getLogger("lokaly.worker")

EXIT_DEADLINE = 3


def install_graceful_shutdown(worker: StreamWorker, *, timeout_s: float) -> None:
    """Make SIGTERM and SIGINT stop ``worker`` within ``timeout_s`` seconds (main thread)."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if worker.stopping.is_set():
            return  # a second signal changes nothing: the deadline already runs
        logger.info(
            "stopping: finishing the events in hand",
            extra={"signal": signal.Signals(signum).name, "timeout_s": timeout_s},
        )
        worker.stop()
        deadline = threading.Timer(timeout_s, _give_up, args=(timeout_s,))
        deadline.daemon = True
        deadline.start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def _give_up(timeout_s: float) -> None:
    logger.error(
        "shutdown deadline passed; exiting with the event in flight left pending",
        extra={"timeout_s": timeout_s, "outcome": "aborted"},
    )
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(EXIT_DEADLINE)
