"""``python manage_admin.py run_worker``: process events until SIGTERM/SIGINT.

The signal stops reading; the events in hand are finished and acked, then the process
exits 0, or non-zero after ``WORKER_SHUTDOWN_TIMEOUT_S`` (see lokaly_worker/shutdown.py).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

import lokaly_worker.handlers  # registers the handlers
import lokaly_worker.maintenance  # noqa: F401  (reconcile, trimming, retention)
from lokaly_core.broadcast import get_broadcaster
from lokaly_worker import metrics
from lokaly_worker.consumer import StreamWorker, WorkerConfig
from lokaly_worker.notifier import NotificationSender
from lokaly_worker.registry import registry
from lokaly_worker.shutdown import install_graceful_shutdown


class Command(BaseCommand):
    help = (
        "Run the event worker: read the event stream with a consumer group, run the handlers, "
        "retry failures with backoff and dead-letter what keeps failing; dispatch couriers and "
        "send notifications. Stops on SIGTERM, finishing the events in hand first."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--consumer", help="Consumer name (default: host-pid).")
        parser.add_argument("--no-migrate", action="store_true", help="Skip migrations on start.")
        parser.add_argument(
            "--metrics-port",
            type=int,
            help="Port of the Prometheus /metrics endpoint (default WORKER_METRICS_PORT or "
            "9100; 0 disables).",
        )
        parser.add_argument(
            "--no-notifications",
            action="store_true",
            help="Do not send notifications from this worker (another worker sends them).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["no_migrate"]:
            call_command("migrate_locked", verbosity=0)
        worker = StreamWorker(WorkerConfig.from_settings(options["consumer"]), registry)
        install_graceful_shutdown(worker, timeout_s=settings.WORKER_SHUTDOWN_TIMEOUT_S)
        notifier = None if options["no_notifications"] else NotificationSender().start()
        metrics_server = metrics.start(options["metrics_port"])
        try:
            worker.run()
        finally:
            if metrics_server is not None:
                metrics_server.stop()
            if notifier is not None:
                notifier.stop()
            get_broadcaster().close()
