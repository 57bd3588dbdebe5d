"""The public server's HTTP side: Django's WSGI handler behind the ASGI server, one thread
hop per request (``lokaly_public.wsgi_bridge``; docs/performance.md, fifth session).

Driven as uvicorn drives it: an HTTP scope, ``receive`` giving the body in chunks,
``send`` collecting what would go on the wire.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest

from lokaly_public.wsgi_bridge import OneHopWSGI


def _scope(method: str = "POST", path: str = "/", headers: list[tuple[bytes, bytes]] | None = None):
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers or [],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 3000),
    }


async def _call(
    app: Any, scope: dict[str, Any], chunks: list[bytes], *, ends: bool = True
) -> list[dict[str, Any]]:
    """``chunks`` as the body; then, unless ``ends``, the client goes away."""
    messages = [
        {"type": "http.request", "body": c, "more_body": not ends or i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ] or [{"type": "http.request", "body": b"", "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


class _EchoApp:
    """A WSGI app answering what it read, with two headers of one name; it notes the
    thread its response was closed in."""

    def __init__(self) -> None:
        self.calls = 0
        self.environ: dict[str, Any] = {}
        self.closed_in: int | None = None
        self.ran_in: int | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        self.calls += 1
        self.environ = environ
        self.ran_in = threading.get_ident()
        body = environ["wsgi.input"].read()
        start_response(
            "201 Created",
            [("Content-Type", "application/json"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")],
        )
        app = self

        class Body(list):
            def close(self) -> None:
                app.closed_in = threading.get_ident()

        return Body([b'{"read": ', json.dumps(body.decode()).encode(), b"}"])


async def test_the_body_in_chunks_reaches_the_app_and_the_response_goes_out_whole():
    echo = _EchoApp()
    app = OneHopWSGI(echo, workers=2, max_body=1024)
    scope = _scope(headers=[(b"content-length", b"11"), (b"content-type", b"text/plain")])

    sent = await _call(app, scope, [b"hello", b" ", b"world"])

    assert sent == [
        {
            "type": "http.response.start",
            "status": 201,
            "headers": [
                (b"content-type", b"application/json"),
                (b"set-cookie", b"a=1"),
                (b"set-cookie", b"b=2"),
            ],
        },
        {"type": "http.response.body", "body": b'{"read": "hello world"}'},
    ]
    assert echo.environ["CONTENT_LENGTH"] == "11"
    assert echo.environ["REQUEST_METHOD"] == "POST"
    # the app ran, and its response was closed (Django's request_finished), in one
    # pool thread, not the event loop's
    assert echo.ran_in == echo.closed_in != threading.get_ident()


async def test_a_body_declared_over_the_limit_is_not_read():
    echo = _EchoApp()
    app = OneHopWSGI(echo, workers=1, max_body=10)
    scope = _scope(headers=[(b"content-length", b"11")])

    sent = await _call(app, scope, [b"hello world"])

    # the app still answers (Django refuses it by its Content-Length), having read nothing
    assert sent[1]["body"] == b'{"read": ""}'
    assert echo.environ["CONTENT_LENGTH"] == "11"


async def test_a_client_gone_before_its_body_arrived_runs_nothing():
    echo = _EchoApp()
    app = OneHopWSGI(echo, workers=1, max_body=1024)
    scope = _scope(headers=[(b"content-length", b"100")])

    sent = await _call(app, scope, [b"part of it", b"more"], ends=False)

    assert sent == []
    assert echo.calls == 0


async def test_a_request_crosses_threads_once_each_way(monkeypatch: pytest.MonkeyPatch):
    """a2wsgi went back and forth five times per request (the hand-off, the body, the
    response's start, its body, its end); each crossing into the event loop is a
    ``call_soon_threadsafe``."""
    loop = asyncio.get_running_loop()
    crossings: list[Any] = []
    call_soon_threadsafe = loop.call_soon_threadsafe

    def counting(callback: Any, *args: Any, **kwargs: Any) -> Any:
        crossings.append(callback)
        return call_soon_threadsafe(callback, *args, **kwargs)

    app = OneHopWSGI(_EchoApp(), workers=1, max_body=1024)
    await _call(app, _scope(method="GET"), [])  # the pool's thread starts
    monkeypatch.setattr(loop, "call_soon_threadsafe", counting)
    await _call(app, _scope(headers=[(b"content-length", b"5")]), [b"hello"])

    assert len(crossings) == 1


async def test_lifespan_is_answered():
    app = OneHopWSGI(_EchoApp(), workers=1, max_body=1024)
    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "lifespan"}, receive, send)

    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


@pytest.mark.django_db(transaction=True)
async def test_the_public_application_answers_an_oversized_body_with_the_contracts_400():
    from lokaly_public.asgi import application

    body = json.dumps({"phone": "+4915100000000", "password": "x" * (300 * 1024)}).encode()
    scope = _scope(
        path="/api/auth/token",
        headers=[
            (b"content-length", str(len(body)).encode()),
            (b"content-type", b"application/json"),
        ],
    )

    sent = await _call(application, scope, [body])

    assert sent[0]["status"] == 400
    error = json.loads(sent[1]["body"])["error"]
    assert error["code"] == "malformed_request"
