"""Two registrations of one email at once (issue 11, finding 11, first half): one account
is created, the other request gets the "already exists" answer, never a 500.

Against the real public server (two processes' worth of concurrency: it runs 2 workers
here so both requests are in flight together), the threads released by a barrier.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest

from lokaly_core.accounts.models import User
from tests.factories import PASSWORD
from tests.live import (
    delete_namespace_keys,
    free_port,
    live_environment,
    session_namespace,
    spawn,
    stop,
    wait_ready,
)

ROUNDS = 8


@pytest.fixture(scope="module")
def live_public(django_db_setup: None) -> Iterator[str]:
    namespace = session_namespace("lokaly-register-race")
    delete_namespace_keys(namespace)
    env = {
        **live_environment(namespace),
        "DJANGO_SETTINGS_MODULE": "lokaly_public.settings.test",
    }
    port = free_port()
    logs: dict = {}
    args = ["manage_public.py", "serve", "--no-migrate", "--port", str(port), "--workers", "2"]
    proc = spawn("register-race", args, env, logs)
    try:
        wait_ready(f"http://127.0.0.1:{port}", {"public": proc}, logs)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)
        delete_namespace_keys(namespace)


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_two_registrations_of_one_email_at_once_never_500(live_public: str) -> None:
    answers: list[tuple[int, dict]] = []
    lock = threading.Lock()
    for n in range(ROUNDS):
        email = f"race-{n}@example.test"
        barrier = threading.Barrier(2)

        def register(email: str = email, barrier: threading.Barrier = barrier) -> None:
            with httpx.Client(base_url=live_public, timeout=30) as client:
                client.get("/health/live")  # connected before the barrier
                barrier.wait(timeout=30)
                response = client.post(
                    "/api/auth/register", json={"email": email, "password": PASSWORD, "name": "R"}
                )
            with lock:
                answers.append((response.status_code, response.json()))

        threads = [threading.Thread(target=register) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

    assert len(answers) == 2 * ROUNDS
    assert all(status in (201, 400) for status, _ in answers), answers
    for n in range(ROUNDS):
        assert User.objects.filter(email=f"race-{n}@example.test").count() == 1
    assert sum(status == 201 for status, _ in answers) == ROUNDS
    for status, body in answers:
        if status == 400:
            assert body["error"]["code"] == "validation_error"
            assert body["error"]["details"] == {
                "email": ["An account with this email already exists."]
            }
