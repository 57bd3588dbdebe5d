"""A status change the worker makes reaches the order's sockets when its transaction
commits, not a batch later when its event comes back from the stream; and once."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import redis
from channels_redis.serializers import registry as serializers  # type: ignore[import-untyped]
from django.conf import settings

from lokaly_core.orders.models import Order
from lokaly_core.orders.realtime import order_group
from lokaly_worker.registry import registry
from tests.conftest import order_body, stream_envelopes, wait_until
from tests.worker.conftest import make_worker, run_until

pytestmark = pytest.mark.django_db(transaction=True)


class GroupListener:
    """The messages published to an order's group channel (what each public process's
    channel layer hands its sockets), read by a plain Redis subscriber."""

    def __init__(self, order_id: str) -> None:
        self.client = redis.Redis.from_url(settings.REDIS_URL)
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        self.group = order_group(order_id)
        self.pubsub.subscribe(f"asgi__group__{self.group}")
        self.messages: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        serializer = serializers.get_serializer("msgpack")
        while not self.stop.is_set():
            message = self.pubsub.get_message(timeout=0.05)
            if message is not None:
                self.messages.append(serializer.deserialize(message["data"]))

    def mark(self) -> None:
        serializer = serializers.get_serializer("msgpack")
        self.client.publish(
            f"asgi__group__{self.group}", serializer.serialize({"type": "test.mark"})
        )

    def marked(self) -> bool:
        return any(m.get("type") == "test.mark" for m in self.messages)

    def statuses(self) -> list[str]:
        return [m["status"] for m in self.messages if m.get("type") == "order.status_changed"]

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        self.pubsub.close()
        self.client.close()


def test_confirmed_is_broadcast_at_commit_and_only_once(customer_client, stocked) -> None:
    # given a placed order whose group a public process listens to
    stock = stocked(on_hand=5)
    response = customer_client.post(
        "/api/orders", order_body(stock.store_id, (stock.product_id, 1))
    )
    order_id = response.json()["id"]
    listener = GroupListener(order_id)
    try:
        wait_until(lambda: any(str(e.aggregate_id) == order_id for e in stream_envelopes()))

        # when the worker runs until the batch that confirms the order has committed, and
        # not one turn more (its order.status_changed is not read back from the stream)
        worker = make_worker()

        def confirmed() -> bool:
            return Order.objects.filter(pk=order_id, status="confirmed").exists()

        worker.run(until=confirmed)

        # then the socket's message is already out
        wait_until(lambda: listener.statuses() == ["confirmed"], timeout=5)

        # and when the worker reads the change's own event, it does not send it again
        def change_handled() -> bool:
            pending: dict[str, Any] = worker.redis.xpending(  # type: ignore[assignment]
                worker.config.stream, worker.config.group
            )
            types = [e.type for e in stream_envelopes() if str(e.aggregate_id) == order_id]
            return "order.status_changed" in types and pending["pending"] == 0

        run_until(worker, change_handled)
        listener.mark()  # whatever was published before this has arrived once it has
        wait_until(listener.marked, timeout=5)
        assert listener.statuses() == ["confirmed"]
    finally:
        listener.close()


def test_the_registry_lists_the_at_commit_broadcast() -> None:
    names = [f.__name__ for f in registry.commit_listeners()]
    assert names == ["broadcast_status_changes_at_commit"]
