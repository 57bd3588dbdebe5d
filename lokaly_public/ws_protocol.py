"""uvicorn's WebSocket protocol, closing open sockets with 1001 (going away) on shutdown.

On SIGTERM uvicorn stops accepting connections, then asks each open connection to shut
down: HTTP requests in flight finish (up to ``--timeout-graceful-shutdown``), and every
WebSocket is closed with 1012 (service restart). The contract promises 1001, the code
for "the server is going away", which clients treat as "reconnect elsewhere" (with
``since``, they miss nothing). ``serve`` passes this class as uvicorn's ``--ws``.

Only ``shutdown`` differs; everything else is uvicorn's ``websockets-sansio`` protocol,
pinned in requirements/base.txt (tests/e2e/test_server_shutdown.py notices if a new
uvicorn changes the attributes used here).
"""

from __future__ import annotations

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

GOING_AWAY = 1001


class GoingAwayWebSocketProtocol(WebSocketsSansIOProtocol):
    def shutdown(self) -> None:
        if not self.handshake_complete or self.close_sent:
            super().shutdown()  # a handshake in progress gets a 500; a closing socket closes
            return
        self.stop_keepalive()
        self.queue.put_nowait({"type": "websocket.disconnect", "code": GOING_AWAY})
        self.conn.send_close(GOING_AWAY)
        self.close_sent = True
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.transport.close()  # flushes the close frame first
