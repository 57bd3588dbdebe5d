"""Where notifications go: a sender takes one notification (a JSON-able dict) and
delivers it, raising on failure so that it is tried again later.

``get_sender()`` picks one from the settings: ``WebhookSender`` when
``NOTIFICATION_WEBHOOK_URL`` is set (a push gateway, an e-mail/SMS relay behind an HTTP
endpoint), else ``LoggingSender``.

Every webhook delivery is signed (docs/api.md, "Webhooks"): ``X-Lokaly-Timestamp`` (Unix
seconds) and ``X-Lokaly-Signature: v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`` with
``WEBHOOK_SIGNING_SECRET``. Only https:// URLs unless DEBUG; a redirect is not followed
(a 3xx answer is a failed delivery: a redirect could send the body somewhere else).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
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


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    """``v1=`` and the hex HMAC-SHA256 of ``<timestamp>.<body>`` keyed by ``secret``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A 3xx stays an answer (an HTTPError, so a failed delivery), never a new request."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


class WebhookSender:
    """POSTs the notification as signed JSON; anything but a 2xx answer (a redirect too),
    or no answer within ``timeout`` seconds, is a failure."""

    def __init__(self, url: str, *, timeout: float, secret: str, allow_http: bool = False) -> None:
        schemes = {"http", "https"} if allow_http else {"https"}
        if urllib.parse.urlsplit(url).scheme not in schemes:
            raise ValueError(
                f"NOTIFICATION_WEBHOOK_URL must be an {'http(s)' if allow_http else 'https'} "
                f"URL, not {url!r}"
            )
        if not secret:
            raise ValueError("WEBHOOK_SIGNING_SECRET is needed to sign webhook deliveries")
        self.url = url
        self.timeout = timeout
        self.secret = secret

    def send(self, notification: dict[str, Any]) -> None:
        body = json.dumps(notification, separators=(",", ":")).encode()
        timestamp = str(int(time.time()))
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked in __init__
            self.url,
            data=body,
            headers={
                "Content-Type": "application/json",
                "User-Agent": "lokaly-notifications",
                "X-Lokaly-Timestamp": timestamp,
                "X-Lokaly-Signature": webhook_signature(self.secret, timestamp, body),
            },
            method="POST",
        )
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:
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
        return WebhookSender(
            url,
            timeout=float(settings.NOTIFICATION_WEBHOOK_TIMEOUT_S),
            secret=settings.WEBHOOK_SIGNING_SECRET,
            allow_http=settings.DEBUG,
        )
    return LoggingSender()
