"""Finding 12 of issue 11 (webhooks): every delivery is signed with WEBHOOK_SIGNING_SECRET,
only https:// is accepted unless DEBUG, and a redirect is a failed delivery, not followed.

The receiver is a real HTTP server on 127.0.0.1 (in a thread) that verifies the signature
the way docs/api.md ("Webhooks") tells receivers to.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from lokaly_core.notifications.senders import SendFailed, WebhookSender, get_sender

SECRET = "webhook-signing-secret-for-tests-0123456789"
NOTIFICATION = {
    "id": "6f1c9a52-1111-4e0c-9d55-000000000001",
    "user_id": "6f1c9a52-2222-4e0c-9d55-000000000002",
    "type": "order.confirmed",
    "order_id": "6f1c9a52-3333-4e0c-9d55-000000000003",
}
TOLERANCE_SECONDS = 300


def verify(secret: str, headers: Any, body: bytes) -> bool:
    """The receivers' recipe (docs/api.md): recompute, compare in constant time, and
    refuse a timestamp older than five minutes (a replay)."""
    timestamp = headers.get("X-Lokaly-Timestamp", "")
    signature = headers.get("X-Lokaly-Signature", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > TOLERANCE_SECONDS:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest(signature, f"v1={expected.hexdigest()}")


@dataclass
class Receiver:
    url: str
    secret: str = SECRET
    requests: list[tuple[str, bool]] = field(default_factory=list)  # (path, signature ok)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    rec = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            ok = verify(rec.secret, self.headers, body)
            rec.requests.append((self.path, ok))
            if self.path == "/moved":  # a redirect to a path that would take it
                self.send_response(307)
                self.send_header("Location", f"{rec.url}/elsewhere")
                self.end_headers()
                return
            self.send_response(204 if ok else 401)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server.RequestHandlerClass = Handler
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()


def _sender(url: str, secret: str = SECRET) -> WebhookSender:
    return WebhookSender(url, timeout=5, secret=secret, allow_http=True)  # http: as in DEBUG


def test_every_delivery_is_signed_and_the_receiver_verifies_it(receiver: Receiver) -> None:
    _sender(f"{receiver.url}/notify").send(NOTIFICATION)
    assert receiver.requests == [("/notify", True)]


def test_a_wrong_secret_fails_verification(receiver: Receiver) -> None:
    with pytest.raises(SendFailed, match="401"):
        _sender(f"{receiver.url}/notify", secret="another-secret-of-32-characters-xx").send(
            NOTIFICATION
        )
    assert receiver.requests == [("/notify", False)]


def test_a_redirect_is_a_failed_delivery_not_followed(receiver: Receiver) -> None:
    with pytest.raises(SendFailed, match="307"):
        _sender(f"{receiver.url}/moved").send(NOTIFICATION)
    assert [path for path, _ok in receiver.requests] == ["/moved"]  # /elsewhere never asked


def test_only_https_unless_debug(settings: Any) -> None:
    settings.WEBHOOK_SIGNING_SECRET = SECRET
    settings.NOTIFICATION_WEBHOOK_URL = "http://push.example.test/hook"
    settings.DEBUG = False
    with pytest.raises(ValueError, match="https"):
        get_sender()
    settings.DEBUG = True
    assert isinstance(get_sender(), WebhookSender)
    settings.DEBUG = False
    settings.NOTIFICATION_WEBHOOK_URL = "https://push.example.test/hook"
    sender = get_sender()
    assert isinstance(sender, WebhookSender) and sender.secret == SECRET


def test_get_sender_signs_with_the_configured_secret(receiver: Receiver, settings: Any) -> None:
    settings.DEBUG = True  # the receiver is plain HTTP
    settings.NOTIFICATION_WEBHOOK_URL = f"{receiver.url}/notify"
    settings.WEBHOOK_SIGNING_SECRET = receiver.secret = "configured-secret-0123456789-abcdef"
    get_sender().send(NOTIFICATION)
    assert receiver.requests == [("/notify", True)]
