"""Django's WSGI handler behind the ASGI server, one thread hop per request.

The public server speaks ASGI (HTTP and WebSockets share a port) while its views are
synchronous DRF, which runs fastest under Django's WSGI handler in a thread pool
(docs/performance.md, "Choosing the public server set-up"). a2wsgi's ``WSGIMiddleware``
did that with a round trip between the thread and the event loop for every read of the
body and every ``send`` of the response: five per request (the hand-off, the body, the
response's start, its body, its end), each a futex wake and a GIL hand-over, which a
profile of a public process at 32 customers put at about 11 % of its CPU
(docs/performance.md, "Issue 10, fifth session"). Here the event loop reads the body
first, the thread runs the whole WSGI cycle and hands back the response whole, and the
loop sends it: one hop there and one back.

What that changes, and why it is safe here:

- The body is read before the view runs, up to ``max_body`` bytes as its
  ``Content-Length`` declares. A body declared larger is not read at all: Django and the
  JSON parser refuse it by its ``Content-Length`` (400) before reading. A body without a
  ``Content-Length`` (chunked) is not read either: Django reads none of it (its stream is
  limited to the declared length, 0), as under a2wsgi. A client gone before its body
  arrived gets nothing, and the view does not run.
- The response is collected in the thread and sent in one body message. The public API
  answers JSON of bounded size; nothing here streams (no ``StreamingHttpResponse``), and
  the few static files (the API docs' assets, through WhiteNoise) are a few hundred KB.
- Each request runs in a copy of the event loop's context, as under a2wsgi
  (tests/public/test_cache_connections.py depends on caches working in fresh contexts).
- The response iterable's ``close()`` runs in the request's thread, so Django's
  ``request_finished`` (which closes or keeps the thread's database connection) happens
  where the connection lives.
"""

from __future__ import annotations

import asyncio
import contextvars
import io
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from a2wsgi.wsgi import build_environ

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Response = tuple[int, list[tuple[bytes, bytes]], bytes]


def _declared_length(scope: dict[str, Any]) -> int:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


class OneHopWSGI:
    """An ASGI application running ``app`` (WSGI) in ``workers`` threads."""

    def __init__(self, app: WSGIApp, *, workers: int, max_body: int) -> None:
        self.app = app
        self.max_body = max_body
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="wsgi")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            raise ValueError(f"OneHopWSGI serves HTTP, not {scope['type']!r}")
        body = await self._read_body(scope, receive)
        if body is None:  # the client went away before its body arrived
            return
        environ: Any = build_environ(scope, body)  # type: ignore[arg-type]  # BytesIO reads as Body
        context = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        status, headers, content = await loop.run_in_executor(
            self.executor, context.run, self._respond, environ
        )
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    async def _read_body(self, scope: dict[str, Any], receive: Any) -> io.BytesIO | None:
        declared = _declared_length(scope)
        if declared <= 0 or declared > self.max_body:
            return io.BytesIO(b"")
        chunks: list[bytes] = []
        size = 0
        while size < declared:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            if not message.get("more_body", False):
                break
        return io.BytesIO(b"".join(chunks))

    def _respond(self, environ: dict[str, Any]) -> Response:
        """The whole WSGI cycle, in a pool thread: (status, headers, body)."""
        started: list[Any] = []
        written: list[bytes] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], None]:
            if exc_info is not None and started:
                raise exc_info[1].with_traceback(exc_info[2])
            started[:] = [status, headers]
            return written.append

        iterable = self.app(environ, start_response)
        try:
            written.extend(iterable)
        finally:
            close = getattr(iterable, "close", None)
            if close is not None:
                close()
        status, headers = started
        encoded = [
            (name.strip().lower().encode("latin-1"), value.strip().encode("latin-1"))
            for name, value in headers
        ]
        return int(status.split(" ", 1)[0]), encoded, b"".join(written)

    @staticmethod
    async def _lifespan(receive: Any, send: Any) -> None:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
        if message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
