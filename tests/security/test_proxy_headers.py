"""Finding 12 of issue 11 (proxies): the public server, started as production starts it
(``manage_public.py serve``, uvicorn), believes ``X-Forwarded-For`` only from
TRUSTED_PROXIES. uvicorn's own default trusts 127.0.0.1, so a client of a local proxy (or
anyone on the host) could claim a fresh address per request and escape the rate limit.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.live import (
    delete_namespace_keys,
    free_port,
    live_environment,
    session_namespace,
    spawn,
    stop,
    wait_ready,
)

LIMIT = 3


def _serve(name: str, trusted_proxies: str) -> Iterator[str]:
    namespace = session_namespace(f"lokaly-proxy-{name}")
    delete_namespace_keys(namespace)
    env = {
        **live_environment(namespace),
        "DJANGO_SETTINGS_MODULE": "lokaly_public.settings.test",
        "PUBLIC_RATE_LIMIT": f"{LIMIT}/m",
        "TRUSTED_PROXIES": trusted_proxies,
    }
    port = free_port()
    logs: dict[str, Path] = {}
    proc: subprocess.Popen[bytes] = spawn(
        name,
        ["manage_public.py", "serve", "--no-migrate", "--port", str(port), "--workers", "1"],
        env,
        logs,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, {name: proc}, logs)
        yield url
    finally:
        stop(proc)
        delete_namespace_keys(namespace)


@pytest.fixture(scope="module")
def untrusting_server(django_db_setup: None) -> Iterator[str]:
    yield from _serve("public-no-proxies", "")


@pytest.fixture(scope="module")
def proxied_server(django_db_setup: None) -> Iterator[str]:
    yield from _serve("public-proxied", "127.0.0.1")


def _statuses(url: str, count: int, forwarded: list[str]) -> list[int]:
    with httpx.Client(base_url=url, timeout=10) as client:
        return [
            client.get("/api/stores", headers={"X-Forwarded-For": forwarded[i]}).status_code
            for i in range(count)
        ]


def test_forwarded_for_from_localhost_is_not_believed_without_trusted_proxies(
    untrusting_server: str,
) -> None:
    # A new claimed address on every request: the limit still counts the real peer.
    forwarded = [f"203.0.113.{i}" for i in range(1, LIMIT + 3)]
    statuses = _statuses(untrusting_server, LIMIT + 2, forwarded)
    assert 429 not in statuses[:LIMIT], statuses
    assert statuses[LIMIT:] == [429, 429], statuses


def test_forwarded_for_is_believed_from_a_trusted_proxy(proxied_server: str) -> None:
    # Behind a trusted proxy each client has its own count ...
    forwarded = [f"198.51.100.{i}" for i in range(1, LIMIT + 3)]
    assert 429 not in _statuses(proxied_server, LIMIT + 2, forwarded)
    # ... and one client is still limited.
    same = ["198.51.100.200"] * (LIMIT + 1)
    assert _statuses(proxied_server, LIMIT + 1, same)[-1] == 429
