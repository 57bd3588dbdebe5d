"""The worker's notification sender: a thread of its own, with its own database
connection, so a slow or failing receiver never holds up event processing."""

from __future__ import annotations

import logging
import threading

from django.db import close_old_connections, connection

from lokaly_core.notifications.senders import Sender, get_sender
from lokaly_core.notifications.services import send_due

logger = logging.getLogger("lokaly.worker.notifier")


class NotificationSender:
    """Sends due notifications every ``interval`` seconds (at once again after a full
    batch) until ``stop()``."""

    def __init__(
        self, sender: Sender | None = None, *, interval: float = 0.5, batch: int = 50
    ) -> None:
        # Built here, so that a bad NOTIFICATION_WEBHOOK_URL stops the worker at start-up.
        self.sender = sender or get_sender()
        self.interval = interval
        self.batch = batch
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="notification-sender", daemon=True)

    def start(self) -> NotificationSender:
        self.thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        self.thread.join(timeout)

    def _run(self) -> None:
        sender = self.sender
        logger.info("notification sender started", extra={"sender": type(sender).__name__})
        try:
            while not self.stopping.is_set():
                tried = self._send_batch(sender)
                if tried < self.batch:
                    self.stopping.wait(self.interval)
        finally:
            connection.close()
            logger.info("notification sender stopped")

    def _send_batch(self, sender: Sender) -> int:
        try:
            close_old_connections()
            return send_due(sender, batch=self.batch, should_stop=self.stopping.is_set)
        except Exception:
            logger.exception("sending notifications failed; will try again")
            return 0
