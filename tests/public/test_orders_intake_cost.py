"""What placing an order costs and answers since the lean intake (docs/performance.md,
"Lean intake"): round trips per order, the answer's bytes, replays, dropped connections."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import psycopg
import pytest
from django.conf import settings
from django.db import close_old_connections, connection
from rest_framework.renderers import JSONRenderer as DrfJSONRenderer

from lokaly_core.orders.models import IdempotencyKey, Order
from lokaly_core.outbox.models import OutboxEvent
from lokaly_core.redis_client import get_redis
from lokaly_core.web.renderers import JSONRenderer
from tests.conftest import client_for, order_body

ORDERS = "/api/orders"
# A connection being set up, and redis-py's health check (a PING on a connection idle for
# more than its health_check_interval, 30 s: seen once when a slow machine left the
# connection idle that long between the two requests), are not the request's commands.
SETUP = {"SELECT", "CLIENT", "HELLO", "PING"}


@pytest.mark.django_db(transaction=True)
def test_placing_an_order_with_a_key_is_four_statements_one_of_them_a_write(
    customer, store, stocked, django_assert_num_queries
):
    # given a customer whose connection is open (its set-up statements are not the order's)
    client = client_for(customer)
    body = order_body(store.id, *[(stocked().product_id, 1) for _ in range(3)])
    client.get("/api/me")

    # when
    with django_assert_num_queries(4) as captured:
        response = client.post(ORDERS, body, HTTP_IDEMPOTENCY_KEY="k-1")

    # then: the user, the key, the store's offers with the order's number, and one
    # write; no BEGIN/COMMIT (Django logs a COMMIT as a query) and no savepoint
    assert response.status_code == 201, response.content
    statements = [q["sql"].split(None, 1)[0].upper() for q in captured.captured_queries]
    assert statements == ["SELECT", "SELECT", "SELECT", "WITH"]
    assert (Order.objects.count(), OutboxEvent.objects.count()) == (1, 1)
    assert IdempotencyKey.objects.get().response_body == response.json()


def test_the_answer_is_the_json_drf_would_write_for_the_same_body(
    customer_client, store, stocked
):
    stock = stocked(name="Crème fraîche \u2028 200 g")

    response = customer_client.post(ORDERS, order_body(store.id, (stock.product_id, 2)))

    assert response.status_code == 201
    assert response.content == DrfJSONRenderer().render(json.loads(response.content))
    assert response.json() == customer_client.get(f"{ORDERS}/{response.json()['id']}").json()


def test_the_renderer_writes_what_drf_writes_for_values_json_lacks():
    data = {
        "id": uuid.UUID("6f1c1b52-3c8e-4a55-9a55-0b0b7d1c2e3f"),
        "at": datetime(2026, 11, 27, 10, 15, tzinfo=UTC),
        "at_us": datetime(2026, 11, 27, 10, 15, 0, 123456, tzinfo=UTC),
        "price": Decimal("12.50"),
        "text": "é\u2028\u2029",
        "nested": [{"n": None, "b": True, "f": 4.89}],
    }

    rendered = JSONRenderer().render(data, "application/json")

    assert rendered == DrfJSONRenderer().render(data, "application/json")
    assert json.loads(rendered)["at"] == "2026-11-27T10:15:00Z"


@pytest.mark.django_db(transaction=True)
def test_an_order_after_the_server_ended_the_connection_is_placed(customer, store, stocked):
    # given a persistent connection, recently checked, that the server then terminates
    client = client_for(customer)
    stock = stocked()
    assert client.post(ORDERS, order_body(store.id, (stock.product_id, 1))).status_code == 201
    pid = connection.connection.info.backend_pid
    database = settings.DATABASES["default"]
    with psycopg.connect(
        host=database["HOST"] or None, port=database["PORT"] or None, user=database["USER"],
        password=database["PASSWORD"] or None, dbname=connection.settings_dict["NAME"],
        autocommit=True,
    ) as admin:
        admin.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])  # waits until it is gone

    # when the customer places the next order within the health check interval (the
    # server's request start checks the connection; Django's test client skips that)
    close_old_connections()
    response = client.post(ORDERS, order_body(store.id, (stock.product_id, 1)))

    # then it is placed on a new connection, not refused with a 500
    assert response.status_code == 201, response.content
    assert connection.connection.info.backend_pid != pid
    assert Order.objects.count() == 2


def test_a_request_counts_against_the_rate_limit_in_one_redis_command(customer_client):
    # given a monitor of this test's Redis database, and the clients' connections open
    customer_client.get("/api/stores")
    redis = get_redis()
    db = redis.connection_pool.connection_kwargs.get("db", 0)
    marker = f"end-of-request-{uuid.uuid4()}"
    with redis.monitor() as monitor:
        # when a request is made, then a marker sent after it
        response = customer_client.get("/api/stores")
        redis.echo(marker)
        commands = []
        while True:
            seen = monitor.next_command()
            if marker in seen["command"]:
                break
            name = seen["command"].split()[0].upper()
            # Not the script's own commands, nor the marker's connection being set up.
            if seen["db"] == db and seen.get("client_type") != "lua" and name not in SETUP:
                commands.append(name)

    # then the request's only command is the limiter's script
    assert response.status_code == 200
    assert commands in (["EVALSHA"], ["EVALSHA", "SCRIPT", "EVALSHA"])


def test_a_replay_answers_the_first_response_even_once_the_store_is_closed(
    customer_client, store, stocked
):
    # given an order placed with a key, then its store deactivated
    body = order_body(store.id, (stocked().product_id, 1))
    first = customer_client.post(ORDERS, body, HTTP_IDEMPOTENCY_KEY="k-1")
    type(store).objects.filter(pk=store.pk).update(is_active=False)

    # when the client retries: the key is looked up before the domain checks the store
    again = customer_client.post(ORDERS, body, HTTP_IDEMPOTENCY_KEY="k-1")

    # then
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert again["Idempotent-Replayed"] == "true"
    assert Order.objects.count() == 1
