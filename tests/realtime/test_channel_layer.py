"""The public server's channel layer (lokaly_public.channel_layer) on the real Redis: groups
work as with channels_redis' pub/sub layer while a consumer's own channel subscribes
nothing and concurrent group changes go out in batches (one handshake's two groups in one
SUBSCRIBE: tests/realtime/test_handshake_cost.py)."""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

import pytest
import redis
from django.conf import settings

from lokaly_public.channel_layer import GroupsPubSubChannelLayer


@pytest.fixture
async def layer() -> Any:
    prefix = f"lokaly-test-{uuid.uuid4().hex[:8]}"
    layer = GroupsPubSubChannelLayer(hosts=[settings.REDIS_URL], prefix=prefix)
    yield layer
    await layer.flush()


def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def _subscribed(layer: Any, group: str) -> int:
    """Redis' count of subscribers to ``group``'s channel (PUBSUB NUMSUB)."""
    with _redis() as client:
        return int(client.pubsub_numsub(f"{layer.prefix}__group__{group}")[0][1])


async def _receive(layer: Any, channel: str, timeout: float = 2) -> dict[str, Any] | None:
    try:
        return await asyncio.wait_for(layer.receive(channel), timeout)
    except TimeoutError:
        return None


async def test_a_consumers_own_channel_subscribes_nothing_and_local_sends_arrive(
    layer: Any,
) -> None:
    channel = await layer.new_channel()
    await layer.group_add("g", channel)

    with _redis() as client:
        channels = {c.decode() for c in client.pubsub_channels(f"{layer.prefix}*")}
    assert channels == {f"{layer.prefix}__group__g"}
    await layer.send(channel, {"type": "hello"})
    assert await _receive(layer, channel) == {"type": "hello"}


async def test_joining_while_the_last_member_leaves_keeps_the_group_subscribed(
    layer: Any,
) -> None:
    first, second = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("g", first)
    assert _subscribed(layer, "g") == 1

    # the last member leaves (an UNSUBSCRIBE on its way) while another joins
    await asyncio.gather(layer.group_discard("g", first), layer.group_add("g", second))
    assert _subscribed(layer, "g") == 1
    await layer.group_send("g", {"type": "change", "n": 1})
    assert await _receive(layer, second) == {"type": "change", "n": 1}

    # and once more with the join a loop iteration later
    leave = asyncio.ensure_future(layer.group_discard("g", second))
    await asyncio.sleep(0)
    join = asyncio.ensure_future(layer.group_add("g", first))
    await asyncio.gather(leave, join)
    assert _subscribed(layer, "g") == 1
    await layer.group_send("g", {"type": "change", "n": 2})
    assert await _receive(layer, first) == {"type": "change", "n": 2}


async def test_concurrent_joins_and_leaves_end_subscribed_exactly_when_members_remain(
    layer: Any,
) -> None:
    rng = random.Random(7)
    channels = [await layer.new_channel() for _ in range(40)]
    groups = ["a", "b", "c"]
    for round_ in range(6):
        members: dict[str, set[str]] = {g: set() for g in groups}
        tasks = []
        for channel in channels:
            for group in groups:
                if rng.random() < 0.5:
                    tasks.append(layer.group_add(group, channel))
                    members[group].add(channel)
        await asyncio.gather(*tasks)
        leaving = []
        for group in groups:
            for channel in sorted(members[group]):
                if rng.random() < (0.9 if round_ % 2 else 0.3):
                    leaving.append(layer.group_discard(group, channel))
                    members[group].discard(channel)
        rng.shuffle(leaving)
        await asyncio.gather(*leaving)

        for group in groups:
            assert _subscribed(layer, group) == (1 if members[group] else 0), (round_, group)
            await layer.group_send(group, {"type": "ping", "group": group})
        for channel in channels:
            expected = sorted(g for g in groups if channel in members[g])
            got: list[str] = []
            for _ in expected:
                message = await _receive(layer, channel)
                assert message is not None, (round_, channel, expected, got)
                got.append(message["group"])
            assert sorted(got) == expected
            assert layer._get_layer().channels[channel].empty()  # exactly once each
        for group in groups:
            await asyncio.gather(*(layer.group_discard(group, c) for c in members[group]))
