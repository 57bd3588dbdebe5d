"""Where notifications go: a sender takes one notification (a JSON-able dict) and
delivers it, raising on failure so that it is tried again later.

``get_sender()`` picks one from the settings: ``WebhookSender`` when
``NOTIFICATION_WEBHOOK_URL`` is set (a push gateway, an e-mail/SMS relay behind an HTTP
endpoint), else ``LoggingSender``.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Protocol

from django.conf import settings

logger = logging.getLogger("lokaly.notifications")


class SendFailed(Exception):
    """The notification was not delivered (it is tried again later)."""


class Sender(Protocol):
    def send(self, notification: dict[str, Any]) -> None:
        """Deliver one notification; raise on failure."""
        ...


class LoggingSender:
    """The default without a webhook: one structured log line per notification."""

    def send(self, notification: dict[str, Any]) -> None:
        logger.info(
            "notification sent",
            extra={
                "notification_id": notification["id"],
                "user_id": notification["user_id"],
                "notification_type": notification["type"],
                "order_id": notification["order_id"],
                "sender": "log",
            },
        )


class WebhookSender:
    """POSTs the notification as JSON; anything but a 2xx answer, or no answer within
    ``timeout`` seconds, is a failure."""

    def __init__(self, url: str, *, timeout: float) -> None:
        if urllib.parse.urlsplit(url).scheme not in {"http", "https"}:
            raise ValueError(f"NOTIFICATION_WEBHOOK_URL must be an http(s) URL, not {url!r}")
        self.url = url
        self.timeout = timeout

    def send(self, notification: dict[str, Any]) -> None:
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked in __init__
            self.url,
            data=json.dumps(notification, separators=(",", ":")).encode(),
            headers={"Content-Type": "application/json", "User-Agent": "lokaly-notifications"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                status = response.status
        except urllib.error.HTTPError as exc:  # 4xx and 5xx
            raise SendFailed(f"webhook answered {exc.code}") from exc
        except (urllib.error.URLError, OSError) as exc:  # refused, DNS, timeout, reset
            reason = getattr(exc, "reason", exc)
            raise SendFailed(f"webhook unreachable: {reason}") from exc
        if not 200 <= status < 300:
            raise SendFailed(f"webhook answered {status}")


def get_sender() -> Sender:
    url = settings.NOTIFICATION_WEBHOOK_URL
    if url:
        return WebhookSender(url, timeout=float(settings.NOTIFICATION_WEBHOOK_TIMEOUT_S))
    return LoggingSender()
