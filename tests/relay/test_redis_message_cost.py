"""A message from Redis is not turned into a string on its way to the node (found by ``benchmarks/nodes.py``).

redis-py 8 speaks RESP3 by default, and its RESP3 parser hands every pub/sub
message to a default handler that builds ``"Push response: " + str(response)``
for a debug log, whether or not that log is enabled: the ``repr`` of every
frame's bytes, about four times its size.  Three nodes over Redis spent half of
a consumer node's CPU there (py-spy: 193 of 548 samples), ~230 µs per 40 KB
frame read from Redis.  The broker speaks RESP2, whose pub/sub messages are
plain replies that nothing stringifies.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis._parsers.resp3 import _AsyncRESP3Parser

from relay.broker.redis import RedisBroker
from relay.wire import ALERT
from relay.wire.envelope import Envelope
from tests.services import private_redis
from tests.support import GUARD

pytestmark = pytest.mark.redis


async def test_a_message_from_redis_is_not_stringified_for_a_debug_log(monkeypatch: pytest.MonkeyPatch) -> None:
    stringified = 0
    original = _AsyncRESP3Parser.handle_pubsub_push_response

    async def counted(self: _AsyncRESP3Parser, response: Any) -> Any:
        nonlocal stringified
        stringified += 1
        return await original(self, response)

    monkeypatch.setattr(_AsyncRESP3Parser, "handle_pubsub_push_response", counted)
    payload = b'{"filler": "' + b"x" * 40_000 + b'"}'  # the size of a 640x480 JPEG
    async with private_redis() as redis:
        heard: list[Envelope] = []
        arrived = asyncio.Event()

        def deliver(envelope: Envelope) -> None:
            heard.append(envelope)
            arrived.set()

        listener = RedisBroker(redis.url, "listener")
        sender = RedisBroker(redis.url, "sender")
        await listener.start(deliver)
        await sender.start(lambda _: None)
        try:
            listener.interest("stream_a", True, frames=False)
            await listener.listening("stream_a")
            sender.publish(Envelope.for_message(ALERT, "stream_a", payload, origin="sender:1"))
            async with asyncio.timeout(GUARD):
                await arrived.wait()
        finally:
            await listener.close()
            await sender.close()
    assert [envelope.stream_id for envelope in heard] == ["stream_a"]
    assert stringified == 0, "every message from Redis went through redis-py's RESP3 push handler (a str() of it)"
