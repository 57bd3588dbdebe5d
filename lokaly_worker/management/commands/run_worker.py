"""``python manage_admin.py run_worker``: process events until SIGTERM/SIGINT."""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

import lokaly_worker.handlers  # noqa: F401  (registers the handlers)
from lokaly_core.broadcast import get_broadcaster
from lokaly_worker.consumer import StreamWorker, WorkerConfig
from lokaly_worker.notifier import NotificationSender
from lokaly_worker.registry import registry


class Command(BaseCommand):
    help = (
        "Run the event worker: read the event stream with a consumer group, run the handlers, "
        "retry failures with backoff and dead-letter what keeps failing; dispatch couriers and "
        "send notifications. Stops on SIGTERM."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--consumer", help="Consumer name (default: host-pid).")
        parser.add_argument("--no-migrate", action="store_true", help="Skip migrations on start.")
        parser.add_argument(
            "--no-notifications",
            action="store_true",
            help="Do not send notifications from this worker (another worker sends them).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["no_migrate"]:
            call_command("migrate_locked", verbosity=0)
        worker = StreamWorker(WorkerConfig.from_settings(options["consumer"]), registry)

        def stop(signum: int, frame: FrameType | None) -> None:
            worker.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        notifier = None if options["no_notifications"] else NotificationSender().start()
        try:
            worker.run()
        finally:
            if notifier is not None:
                notifier.stop()
            get_broadcaster().close()
