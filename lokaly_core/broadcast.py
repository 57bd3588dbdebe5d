"""Sends messages to WebSocket groups through the Channels layer from synchronous code.

The worker and the WSGI views are synchronous; the channel layer is asyncio. One event
loop in a background thread keeps the layer's Redis connections open across messages
(``async_to_sync`` would start a loop, and a new connection, for every send).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from typing import Any

from channels.layers import get_channel_layer

logger = logging.getLogger("lokaly.broadcast")


class Broadcaster:
    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="broadcast", daemon=True
        )
        self._thread.start()
        self._layer = get_channel_layer()

    def group_send(self, group: str, message: dict[str, Any], timeout: float = 5.0) -> None:
        future = asyncio.run_coroutine_threadsafe(
            self._layer.group_send(group, message), self._loop
        )
        future.result(timeout=timeout)

    def group_send_many(
        self, messages: Sequence[tuple[str, dict[str, Any]]], timeout: float = 5.0
    ) -> None:
        """``group_send`` of each (group, message), all in flight at once; raises the
        first failure once every send is done."""

        async def send_all() -> None:
            results = await asyncio.gather(
                *(self._layer.group_send(g, m) for g, m in messages), return_exceptions=True
            )
            for result in results:
                if isinstance(result, BaseException):
                    raise result

        asyncio.run_coroutine_threadsafe(send_all(), self._loop).result(timeout=timeout)

    def close(self) -> None:
        async def _close() -> None:
            closer = getattr(self._layer, "flush", None)
            if closer is not None:
                await closer()

        try:
            asyncio.run_coroutine_threadsafe(_close(), self._loop).result(timeout=2)
        except Exception:  # closing is best effort at shutdown
            logger.debug("channel layer close failed", exc_info=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=2)


_broadcaster: Broadcaster | None = None
_lock = threading.Lock()


def get_broadcaster() -> Broadcaster:
    global _broadcaster
    with _lock:
        if _broadcaster is None:
            _broadcaster = Broadcaster()
        return _broadcaster
