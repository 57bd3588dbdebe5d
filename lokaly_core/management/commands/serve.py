"""``manage_public.py serve`` / ``manage_admin.py serve``: migrate, then run the server.

The public server (HTTP + WebSockets) runs under uvicorn with uvloop and httptools;
the admin server (HTTP only) under gunicorn's sync workers. Both choices come from the
measurements in docs/performance.md. The process is replaced by the server (exec), so
signals reach it directly: SIGTERM drains and stops it (uvicorn: no new connections,
requests in flight finish within 10 s, WebSockets are closed with 1001, see
``lokaly_public.ws_protocol``; gunicorn: its graceful timeout of 10 s). A WebSocket
message over ``WS_MAX_FRAME_BYTES`` (64 KiB) closes its socket with 1009, under either
public server.

``manage_public.py serve --server daphne`` runs the public server under daphne instead,
Channels' reference server: one process (no ``--workers``), slower for DRF here
(docs/performance.md), for comparing or for a platform that prefers it.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from lokaly_core.conf.env import env


def _uvicorn_proxy_options() -> list[str]:
    """X-Forwarded-For / -Proto believed from TRUSTED_PROXIES only (uvicorn's default
    trusts 127.0.0.1, so a local proxy's client could claim any address); none when empty."""
    if not settings.TRUSTED_PROXIES:
        return ["--no-proxy-headers"]
    return ["--proxy-headers", "--forwarded-allow-ips", ",".join(settings.TRUSTED_PROXIES)]


class Command(BaseCommand):
    help = "Apply migrations (under an advisory lock), then run this project's server."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, help="Port (default: PUBLIC_PORT / ADMIN_PORT).")
        parser.add_argument("--workers", type=int, help="Server processes.")
        parser.add_argument(
            "--host", default=None, help="Bind address (default: HOST or 127.0.0.1)."
        )
        parser.add_argument("--no-migrate", action="store_true", help="Skip migrations on start.")
        parser.add_argument(
            "--server",
            choices=["uvicorn", "daphne"],
            default="uvicorn",
            help="ASGI server of the public API (default uvicorn; daphne runs one process).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # Any: the public and the admin settings each define SERVER (strings and ints).
        server: dict[str, Any] = settings.SERVER
        daphne = options["server"] == "daphne"
        if daphne and server["kind"] != "asgi":
            raise CommandError("--server daphne serves the public (ASGI) server only.")
        if daphne and (options["workers"] or 1) > 1:
            raise CommandError(
                "daphne runs one process: drop --workers, or run several behind a proxy."
            )
        if not options["no_migrate"]:
            call_command("migrate_locked", verbosity=0)
        host = options["host"] or env("HOST", "127.0.0.1")
        port = str(options["port"] or server["port"])
        workers = "1" if daphne else str(options["workers"] or server["workers"])
        if daphne:
            argv = [
                sys.executable,
                "-m",
                "daphne",
                "--bind",
                host,
                "--port",
                port,
                "--application-close-timeout",
                "10",
                # A client message over WS_MAX_FRAME_BYTES closes its socket with 1009.
                "--websocket-max-message-size",
                str(settings.WS_MAX_FRAME_BYTES),
                "--websocket-max-frame-size",
                str(settings.WS_MAX_FRAME_BYTES),
                "-v",
                "0",
                server["app"],
            ]
        elif server["kind"] == "asgi":
            argv = [
                sys.executable,
                "-m",
                "uvicorn",
                server["app"],
                "--host",
                host,
                "--port",
                port,
                "--workers",
                workers,
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--ws",
                server.get("ws", "websockets-sansio"),
                # websockets closes a message over the limit with 1009 (message too big).
                "--ws-max-size",
                str(settings.WS_MAX_FRAME_BYTES),
                "--no-access-log",
                *_uvicorn_proxy_options(),
                "--timeout-graceful-shutdown",
                "10",
                "--log-level",
                "warning",
            ]
        else:
            argv = [
                sys.executable,
                "-m",
                "gunicorn",
                server["app"],
                "--bind",
                f"{host}:{port}",
                "--workers",
                workers,
                "--threads",
                "4",
                "--graceful-timeout",
                "10",
                # X-Forwarded-Proto (the scheme) believed from TRUSTED_PROXIES only.
                "--forwarded-allow-ips",
                ",".join(settings.TRUSTED_PROXIES),
                "--log-level",
                "warning",
            ]
        under = f" under {options['server']}" if server["kind"] == "asgi" else ""
        self.stdout.write(
            f"serving {server['app']} on http://{host}:{port}{under} ({workers} workers)"
        )
        sys.stdout.flush()
        os.execv(sys.executable, argv)  # noqa: S606 - replaces this process by the server
