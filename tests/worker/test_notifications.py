"""Notifications: written by the worker from events, sent by its own thread through a
webhook (a local HTTP server here), retried with backoff, never blocking the events."""

from __future__ import annotations

import json
import logging
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from lokaly_core.delivery.models import Delivery as DeliveryRow
from lokaly_core.domain.model import orders as o
from lokaly_core.domain.services import ItemRequest, PlaceOrder, place_order
from lokaly_core.events.contracts import format_timestamp
from lokaly_core.notifications.models import Notification
from lokaly_core.notifications.senders import LoggingSender, WebhookSender, get_sender
from lokaly_core.notifications.services import send_due
from lokaly_core.orders.models import Order
from lokaly_core.orders.uow import DjangoUnitOfWork
from lokaly_worker.notifier import NotificationSender
from tests.conftest import stream_envelopes, wait_until
from tests.factories import courier_on_shift
from tests.worker.conftest import run_until

pytestmark = pytest.mark.django_db(transaction=True)

ADDRESS = o.Address("Keizersgracht 1", "Amsterdam", "1015", 52.37, 4.89)


def _place(customer: Any, stock: Any, quantity: int = 1) -> uuid.UUID:
    command = PlaceOrder(
        customer.id, stock.store_id, [ItemRequest(stock.product_id, quantity)], ADDRESS
    )
    order = place_order(
        uow=DjangoUnitOfWork(), clock=timezone.now, delivery_fee_cents=199, command=command
    )
    return order.id


def _kinds(user_id: Any) -> list[str]:
    return list(
        Notification.objects.filter(user_id=user_id)
        .order_by("created_at", "type")
        .values_list("type", flat=True)
    )


# -- written by the worker ---------------------------------------------------------------


def test_confirmed_and_assigned_order_notifies_customer_and_courier(
    customer, stocked, worker
) -> None:
    # given a courier on shift
    stock = stocked(on_hand=10)
    courier = courier_on_shift()

    # when an order is placed and the worker confirms and dispatches it
    order_id = _place(customer, stock)
    run_until(worker, lambda: Notification.objects.filter(user=courier).exists())

    # then the customer is told it is confirmed, the courier that it is theirs
    number = Order.objects.get(pk=order_id).number
    mine = Notification.objects.get(user=customer)
    confirmed = next(
        e
        for e in stream_envelopes()
        if e.type == "order.status_changed" and e.payload["status"] == "confirmed"
    )
    assert (mine.type, mine.title, mine.order_id, mine.event_id) == (
        "order.confirmed",
        "Order confirmed",
        order_id,
        confirmed.event_id,
    )
    assert number in mine.body
    assert (mine.send_status, mine.send_attempts, mine.read_at) == ("pending", 0, None)
    assert mine.next_send_at <= timezone.now()
    theirs = Notification.objects.get(user=courier)
    assert (theirs.type, theirs.order_id) == ("delivery.assigned", order_id)
    assigned = next(e for e in stream_envelopes() if e.type == "delivery.assigned")
    assert theirs.event_id == assigned.event_id


def test_out_of_stock_order_notifies_the_customer_once_even_when_replayed(
    customer, stocked, worker, redis_client
) -> None:
    # given an order for more than the store holds, cancelled by the worker
    stock = stocked(on_hand=1)
    order_id = _place(customer, stock, quantity=2)
    run_until(worker, lambda: Notification.objects.filter(user=customer).exists())

    # when its status change is delivered again (a replay)
    [cancelled] = [e for e in stream_envelopes() if e.type == "order.status_changed"]
    redis_client.xadd(
        settings.EVENT_STREAM,
        {
            "event_id": str(cancelled.event_id),
            "type": cancelled.type,
            "envelope": cancelled.to_json(),
        },
    )
    before = worker.stats.processed
    run_until(worker, lambda: worker.stats.processed > before)

    # then there is still exactly one notification
    [only] = Notification.objects.filter(user=customer)
    assert (only.type, only.order_id, only.event_id) == (
        "order.out_of_stock",
        order_id,
        cancelled.event_id,
    )


# -- senders -----------------------------------------------------------------------------

# The local receivers here speak plain HTTP (allowed in DEBUG only; tests/security/
# test_webhooks_signing.py checks the signature and the https and redirect rules).
LOCAL_WEBHOOK: dict[str, Any] = {"secret": "s" * 32, "allow_http": True}


def test_sender_is_the_log_unless_a_webhook_is_configured(settings) -> None:
    settings.NOTIFICATION_WEBHOOK_URL = ""
    assert isinstance(get_sender(), LoggingSender)

    settings.NOTIFICATION_WEBHOOK_URL = "https://push.example.test/hook"
    settings.NOTIFICATION_WEBHOOK_TIMEOUT_S = 3
    settings.WEBHOOK_SIGNING_SECRET = "s" * 32
    sender = get_sender()
    assert isinstance(sender, WebhookSender)
    assert (sender.url, sender.timeout) == ("https://push.example.test/hook", 3.0)

    settings.NOTIFICATION_WEBHOOK_URL = "file:///etc/passwd"
    with pytest.raises(ValueError, match="http"):
        get_sender()


def _pending(user: Any, **fields: Any) -> Notification:
    now = timezone.now()
    values = {
        "type": "order.confirmed",
        "title": "Order confirmed",
        "body": "Your order LK-000001 is confirmed.",
        "event_id": uuid.uuid4(),
        "created_at": now,
        "next_send_at": now,
    }
    values.update(fields)
    return Notification.objects.create(user=user, **values)


def test_logging_sender_writes_one_line_per_notification(customer, caplog) -> None:
    note = _pending(customer)

    with caplog.at_level(logging.INFO, logger="lokaly.notifications"):
        assert send_due(LoggingSender()) == 1

    [line] = [r for r in caplog.records if r.getMessage() == "notification sent"]
    assert (line.notification_id, line.user_id, line.notification_type) == (
        str(note.id),
        str(customer.id),
        "order.confirmed",
    )
    note.refresh_from_db()
    assert (note.send_status, note.send_attempts) == ("sent", 1)
    assert send_due(LoggingSender()) == 0


@dataclass
class Webhook:
    """A local HTTP endpoint: answers with ``statuses`` in turn (then 200), records every
    JSON body; ``hold`` makes it wait (a receiver that hangs) until set."""

    url: str = ""
    statuses: list[int] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    hold: threading.Event | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # http.server's naming
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if hook.hold is not None:
                hook.hold.wait(30)
            with hook.lock:
                hook.bodies.append(body)
                status = hook.statuses.pop(0) if hook.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hook.url = f"http://127.0.0.1:{server.server_address[1]}/notify"
    yield hook
    if hook.hold is not None:
        hook.hold.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def fast_retries(settings) -> None:
    settings.NOTIFICATION_MAX_ATTEMPTS = 3
    settings.NOTIFICATION_RETRY_BASE_MS = 20
    settings.NOTIFICATION_RETRY_MAX_MS = 50


@pytest.fixture
def notifier() -> Iterator[Any]:
    """``notifier(sender)`` starts the worker's sender thread; stopped at teardown."""
    started: list[NotificationSender] = []

    def start(sender: Any) -> NotificationSender:
        started.append(NotificationSender(sender, interval=0.02).start())
        return started[-1]

    yield start
    for thread in started:
        thread.stop()
        assert not thread.thread.is_alive()


def test_webhook_receives_the_notification_as_json_and_it_is_marked_sent(customer, webhook) -> None:
    note = _pending(customer)

    assert send_due(WebhookSender(webhook.url, timeout=5, **LOCAL_WEBHOOK)) == 1

    assert webhook.bodies == [
        {
            "id": str(note.id),
            "user_id": str(customer.id),
            "type": "order.confirmed",
            "title": "Order confirmed",
            "body": "Your order LK-000001 is confirmed.",
            "order_id": None,
            "event_id": str(note.event_id),
            "created_at": format_timestamp(note.created_at),
        }
    ]
    note.refresh_from_db()
    assert (note.send_status, note.send_attempts, note.last_error) == ("sent", 1, "")
    assert note.sent_at is not None


def test_webhook_failing_twice_is_sent_on_the_third_attempt(
    customer, webhook, fast_retries, notifier
) -> None:
    # given a receiver that answers 500 twice, then 200
    webhook.statuses = [500, 500]
    note = _pending(customer)

    # when the worker's sender thread runs
    notifier(WebhookSender(webhook.url, timeout=5, **LOCAL_WEBHOOK))

    # then the third attempt delivered it
    wait_until(lambda: Notification.objects.filter(pk=note.pk, send_status="sent").exists())
    note.refresh_from_db()
    assert (note.send_attempts, note.last_error) == (3, "")
    assert [b["id"] for b in webhook.bodies] == [str(note.id)] * 3


def test_unreachable_webhook_fails_the_notification_after_the_last_attempt(
    customer, fast_retries, notifier
) -> None:
    # given a port nobody listens on
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    note = _pending(customer)

    notifier(WebhookSender(f"http://127.0.0.1:{port}/notify", timeout=2, **LOCAL_WEBHOOK))

    wait_until(lambda: Notification.objects.filter(pk=note.pk, send_status="failed").exists())
    note.refresh_from_db()
    assert note.send_attempts == 3
    assert note.sent_at is None
    assert note.last_error.startswith("SendFailed: webhook unreachable")


def test_orders_are_confirmed_while_the_webhook_hangs(
    customer, stocked, worker, webhook, notifier
) -> None:
    # given a receiver that does not answer, and the sender stuck waiting on it
    webhook.hold = threading.Event()
    _pending(customer)
    sender_thread = notifier(WebhookSender(webhook.url, timeout=20, **LOCAL_WEBHOOK))
    wait_until(lambda: Notification.objects.filter(next_send_at__gt=timezone.now()).exists())

    # when orders are placed
    stock = stocked(on_hand=10)
    order_ids = [_place(customer, stock) for _ in range(3)]

    # then the worker confirms them (and writes their notifications) all the same
    run_until(
        worker,
        lambda: Order.objects.filter(pk__in=order_ids, status="confirmed").count() == 3,
        timeout=10,
    )
    run_until(worker, lambda: Notification.objects.filter(type="order.confirmed").count() == 4)
    assert sender_thread.thread.is_alive()
    assert not Notification.objects.filter(send_status="sent").exists()
    assert not DeliveryRow.objects.exists()

    # and once the receiver answers, everything is sent
    webhook.hold.set()
    wait_until(lambda: Notification.objects.filter(send_status="sent").count() == 4)


def test_a_stopping_sender_hands_back_the_rest_of_its_batch(customer) -> None:
    # given three due notifications and a sender asked to stop after the first send
    notes = [_pending(customer) for _ in range(3)]
    sent: list[str] = []

    class StopsAfterOne:
        def send(self, notification: dict[str, Any]) -> None:
            sent.append(notification["id"])

    # when a batch runs
    tried = send_due(StopsAfterOne(), should_stop=lambda: bool(sent))

    # then one was sent and the other two are due again at once, not leased away
    assert tried == 1
    statuses = dict(Notification.objects.values_list("id", "send_status"))
    assert sorted(statuses.values()) == ["pending", "pending", "sent"]
    assert (
        Notification.objects.filter(send_status="pending", next_send_at__lte=timezone.now()).count()
        == 2
    )
    assert sent == [str(notes[0].id)]  # the oldest first


def test_a_batch_is_marked_sent_in_one_statement_and_a_failure_only_retries_itself(
    customer, fast_retries
) -> None:
    # given twenty due notifications and a receiver that refuses the fifth
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    notes = [_pending(customer) for _ in range(20)]
    refused = str(notes[4].id)

    class RefusesOne:
        def send(self, notification: dict[str, Any]) -> None:
            if notification["id"] == refused:
                raise RuntimeError("receiver said no")

    # when one batch runs
    with CaptureQueriesContext(connection) as queries:
        assert send_due(RefusesOne()) == 20

    # then the nineteen are sent with their attempt counted, the fifth waits for a retry,
    # in three statements: the claim, the one failure, the nineteen marks together
    rows = {str(n.id): n for n in Notification.objects.all()}
    assert [(rows[str(n.id)].send_status, rows[str(n.id)].send_attempts) for n in notes] == [
        ("pending", 1) if str(n.id) == refused else ("sent", 1) for n in notes
    ]
    assert all(rows[str(n.id)].sent_at is not None for n in notes if str(n.id) != refused)
    assert len(queries) == 3, [q["sql"][:80] for q in queries]


def test_a_slow_batch_marks_what_it_sent_as_it_goes(customer, monkeypatch) -> None:
    # given a batch whose sends take longer than the marking interval
    from lokaly_core.notifications import services

    monkeypatch.setattr(services, "_MARK_SENT_EVERY_S", 0.0)
    notes = [_pending(customer) for _ in range(3)]
    seen_sent: list[int] = []

    class Records:
        def send(self, notification: dict[str, Any]) -> None:
            seen_sent.append(Notification.objects.filter(send_status="sent").count())

    # when it runs, each send finds the ones before it already marked
    assert send_due(Records()) == 3
    assert seen_sent == [0, 1, 2]
    assert Notification.objects.filter(send_status="sent").count() == len(notes)
