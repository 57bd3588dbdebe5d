"""``PUBLIC_RATE_LIMIT`` requests per minute per client IP on ``/api/``, counted in Redis."""

from __future__ import annotations

import time

import pytest
from django.conf import settings
from django.test import override_settings
from django_ratelimit.core import _get_window

from tests.public.conftest import assert_error

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("three_a_minute")]


def _clear_of_window_end(*keys: str, margin: float = 2.0) -> None:
    """Wait, if need be, until no key's one-minute window ends within ``margin`` seconds.

    django-ratelimit counts in fixed windows (staggered per key); requests straddling the
    end of one would see the count start again and the test fail by chance.
    """
    while not all(_get_window(key, 60) - time.time() > margin for key in keys):
        time.sleep(0.1)


@pytest.fixture
def three_a_minute():
    with override_settings(PUBLIC_RATE_LIMIT="3/m"):
        _clear_of_window_end(
            "198.51.100.7", "198.51.100.8", "203.0.113.5", "203.0.113.6", "10.0.0.1"
        )
        yield


def _get(client, ip: str = "198.51.100.7", forwarded: str | None = None):
    extra = {"REMOTE_ADDR": ip}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return client.get("/api/stores", **extra)


def test_the_request_over_the_limit_is_rate_limited_with_retry_after(customer_client):
    # given three requests, all answered
    assert [_get(customer_client).status_code for _ in range(3)] == [200, 200, 200]

    # when a fourth comes within the minute
    response = _get(customer_client)

    # then
    details = assert_error(response, 429, "rate_limited")
    assert 1 <= int(response["Retry-After"]) <= 60
    assert details["limit"] == 3
    assert details["retry_after"] == pytest.approx(int(response["Retry-After"]), abs=1)


def test_the_limit_counts_every_api_request_whoever_makes_it(customer_client, api_client):
    _get(customer_client)
    api_client.post("/api/auth/token", {}, REMOTE_ADDR="198.51.100.7")  # a 400 counts too
    _get(api_client)  # and so does a 401

    assert_error(_get(customer_client), 429, "rate_limited")


def test_the_count_lives_in_redis(customer_client, redis_client):
    for _ in range(3):
        _get(customer_client)

    keys = list(redis_client.scan_iter(match=f"{settings.CACHES['default']['KEY_PREFIX']}:*rl:*"))

    assert len(keys) == 1
    assert int(redis_client.get(keys[0])) == 3
    assert 0 < redis_client.ttl(keys[0]) <= 65  # the window plus django-ratelimit's 5 s


def test_each_client_ip_has_its_own_budget(customer_client):
    for _ in range(3):
        _get(customer_client, ip="198.51.100.7")

    assert _get(customer_client, ip="198.51.100.8").status_code == 200
    assert_error(_get(customer_client, ip="198.51.100.7"), 429, "rate_limited")


def test_x_forwarded_for_is_ignored_from_an_untrusted_peer(customer_client):
    # a client may not dodge the limit by inventing a new address each time
    statuses = [
        _get(customer_client, ip="198.51.100.7", forwarded=f"203.0.113.{n}").status_code
        for n in range(4)
    ]

    assert statuses == [200, 200, 200, 429]


@override_settings(TRUSTED_PROXIES=["10.0.0.1"])
def test_x_forwarded_for_is_honoured_from_a_trusted_proxy(customer_client):
    # given three requests relayed for one client by the trusted proxy
    for _ in range(3):
        assert _get(customer_client, ip="10.0.0.1", forwarded="203.0.113.5").status_code == 200

    # then that client is limited, and another client behind the same proxy is not
    assert_error(_get(customer_client, ip="10.0.0.1", forwarded="203.0.113.5"), 429, "rate_limited")
    assert _get(customer_client, ip="10.0.0.1", forwarded="203.0.113.6").status_code == 200


@override_settings(TRUSTED_PROXIES=["10.0.0.1", "10.0.0.2"])
def test_the_client_is_the_rightmost_address_no_trusted_proxy_added(customer_client):
    # the left-most entry is whatever the client claimed; only our proxies' additions count
    for n in range(3):
        forwarded = f"192.0.2.{n}, 203.0.113.5, 10.0.0.2"
        assert _get(customer_client, ip="10.0.0.1", forwarded=forwarded).status_code == 200

    response = _get(customer_client, ip="10.0.0.1", forwarded="192.0.2.99, 203.0.113.5")

    assert_error(response, 429, "rate_limited")


@override_settings(TRUSTED_PROXIES=["10.0.0.1"])
def test_a_garbage_x_forwarded_for_from_a_trusted_proxy_counts_against_the_proxy(customer_client):
    for _ in range(3):
        _get(customer_client, ip="10.0.0.1", forwarded="not-an-ip")

    response = _get(customer_client, ip="10.0.0.1", forwarded="also-garbage")

    assert_error(response, 429, "rate_limited")


def test_health_is_not_rate_limited(client):
    statuses = [client.get("/health", REMOTE_ADDR="198.51.100.7").status_code for _ in range(5)]

    assert statuses == [200] * 5
