"""The channel layer of the public server: channels_redis' pub/sub layer, for groups only.

``channels_redis.pubsub.RedisPubSubChannelLayer`` subscribes every consumer's own channel
in Redis (``new_channel``: one SUBSCRIBE per socket, one UNSUBSCRIBE at its close) and
sends one SUBSCRIBE per ``group_add``, each a round trip under one lock per process. The
public server's consumers never receive on their own channel (every message reaches them
through a group: the order's, the account's), and a profile of the public processes at
32 customers (docs/performance.md, "Issue 10, third session") put that machinery at about
a fifth of their CPU. This layer keeps the parent's behaviour for groups and changes two
things:

- a consumer's own channel is an in-process queue only: nothing is subscribed in Redis
  for it. ``send`` to a channel of this process is delivered locally; a channel of
  another process cannot be reached (nothing here does that: the worker and the APIs use
  ``group_send`` only);
- subscriptions and unsubscriptions asked for at the same time (the two groups of one
  handshake, the handshakes of a burst) go to Redis as one SUBSCRIBE and one UNSUBSCRIBE
  of all their channels. Each caller still returns only once Redis has been sent its
  channel's command, so a consumer that reads its snapshot after ``group_add`` misses no
  later broadcast, as with the parent.

Group membership stays in each process's memory (a crashed process's subscriptions end
with its connection), as with the parent layer.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from channels_redis.pubsub import (  # type: ignore[import-untyped]
    RedisPubSubChannelLayer,
    RedisPubSubLoopLayer,
    RedisSingleShardConnection,
)
from channels_redis.utils import _wrap_close  # type: ignore[import-untyped]

logger = logging.getLogger("lokaly.realtime")


class _Subscriptions:
    """One shard's subscriptions, changed in batches: the wanted state of every channel
    asked about since the last batch was sent, last word wins."""

    def __init__(self, shard: RedisSingleShardConnection) -> None:
        self.shard = shard
        self.wanted: dict[str, bool] = {}
        self.waiters: list[asyncio.Future[None]] = []
        self.task: asyncio.Future[None] | None = None

    async def want(self, channel: str, subscribed: bool) -> None:
        self.wanted[channel] = subscribed
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        if self.task is None:
            self.task = asyncio.ensure_future(self._send_batches())
        await waiter

    async def _send_batches(self) -> None:
        try:
            await asyncio.sleep(0)  # the callers of this loop iteration join the batch
            while self.wanted:
                wanted, self.wanted = self.wanted, {}
                waiters, self.waiters = self.waiters, []
                error: BaseException | None = None
                try:
                    await self._apply(wanted)
                except Exception as exc:  # each caller sees it, as with the parent layer
                    error = exc
                for waiter in waiters:
                    if not waiter.done():
                        if error is None:
                            waiter.set_result(None)
                        else:
                            waiter.set_exception(error)
        finally:
            self.task = None
            if self.wanted:  # asked for while the last batch's waiters were woken
                self.task = asyncio.ensure_future(self._send_batches())

    async def _apply(self, wanted: dict[str, bool]) -> None:
        shard = self.shard
        async with shard._lock:
            subscribed = shard._subscribed_to
            on = [c for c, want in wanted.items() if want and c not in subscribed]
            off = [c for c, want in wanted.items() if not want and c in subscribed]
            if not on and not off:
                return
            shard._ensure_redis()
            shard._ensure_receiver()
            if on:
                await shard._pubsub.subscribe(*on)
                subscribed.update(on)
            if off:
                await shard._pubsub.unsubscribe(*off)
                subscribed.difference_update(off)


class GroupsPubSubLoopLayer(RedisPubSubLoopLayer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._subscriptions = {id(s): _Subscriptions(s) for s in self._shards}

    def _batch(self, channel: str) -> _Subscriptions:
        return self._subscriptions[id(self._get_shard(channel))]

    async def new_channel(self, prefix: str = "specific.") -> str:
        channel = f"{self.prefix}{prefix}{uuid.uuid4().hex}"
        self.channels[channel] = asyncio.Queue()
        return channel

    async def listen(self, channel: str) -> None:
        """Keep ``channel`` subscribed in Redis (the process's keep-alive subscription)."""
        await self._batch(channel).want(channel, True)

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        queue = self.channels.get(channel)
        if queue is None:
            logger.warning(
                "message to a channel of no consumer of this process dropped",
                extra={"channel": channel, "message_type": message.get("type")},
            )
            return
        queue.put_nowait(self.channel_layer.serialize(message))

    async def receive(self, channel: str) -> Any:
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = asyncio.Queue()
        try:
            message = await queue.get()
        except (TimeoutError, asyncio.CancelledError, GeneratorExit):
            # The consumer is leaving (as the parent assumes): its queue goes with it.
            self.channels.pop(channel, None)
            raise
        return self.channel_layer.deserialize(message)

    async def group_add(self, group: str, channel: str) -> None:
        if channel not in self.channels:
            raise RuntimeError("group_add() takes a channel of this process (new_channel()).")
        group_channel = self._get_group_channel_name(group)
        self.groups.setdefault(group_channel, set()).add(channel)
        await self._batch(group_channel).want(group_channel, True)

    async def group_discard(self, group: str, channel: str) -> None:
        group_channel = self._get_group_channel_name(group)
        members = self.groups.get(group_channel)
        if not members or channel not in members:
            return
        members.remove(channel)
        if not members:
            del self.groups[group_channel]
            await self._batch(group_channel).want(group_channel, False)


class GroupsPubSubChannelLayer(RedisPubSubChannelLayer):
    """``CHANNEL_LAYERS`` backend of the public server (see the module's docstring)."""

    def _get_layer(self) -> GroupsPubSubLoopLayer:
        loop = asyncio.get_running_loop()
        layer = self._layers.get(loop)
        if layer is None:
            layer = GroupsPubSubLoopLayer(*self._args, **self._kwargs, channel_layer=self)
            self._layers[loop] = layer
            _wrap_close(self, loop)
        return layer
