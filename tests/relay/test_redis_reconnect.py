"""A node keeps listening to Redis however its reconnect interleaves with a change of its subscriptions.

The Redis broker reads its pub/sub connection in one task (the listener) and
changes its subscriptions in another.  When Redis comes back after an outage,
whichever of the two touches the connection first reconnects it, and the
reconnect's handshake reads Redis's answers; the other, finding the connection
already open, may start reading it at the same moment.  redis-py then raises
``RuntimeError: readuntil() called while another coroutine is already waiting``
(found by ``benchmarks/soak.py``: a consumer joined a stream during a Redis
restart, and the node never heard another message from Redis).  Here Redis's
answers come through a proxy that delays them, so the handshake is slow and the
overlap certain, and the node must still hear what another node publishes.
"""

from __future__ import annotations

import asyncio

import pytest

from relay.broker.redis import RedisBroker
from relay.wire import ALERT
from relay.wire.envelope import Envelope
from tests.services import private_redis
from tests.support import GUARD
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.redis


async def test_the_listener_survives_a_subscription_change_during_the_reconnect_handshake() -> None:
    async with private_redis() as redis:
        proxy = TcpProxy(redis.port)
        await proxy.start()
        heard: list[Envelope] = []
        arrived = asyncio.Event()

        def deliver(envelope: Envelope) -> None:
            heard.append(envelope)
            arrived.set()

        listener = RedisBroker(f"redis://127.0.0.1:{proxy.port}/0", "listener")
        sender = RedisBroker(redis.url, "sender")
        await listener.start(deliver)
        await sender.start(lambda _: None)
        try:
            listener.interest("stream_a", True)
            await listener.listening("stream_a")

            proxy.cut()  # Redis is gone for the listening node
            async with asyncio.timeout(GUARD):
                await proxy.attempt_while_cut()
            proxy.delay = 0.5  # and when it is back, its answers are slow: the reconnect's handshake takes seconds
            proxy.restore()
            listener.interest("stream_b", True)  # the subscription change reconnects first...
            await asyncio.sleep(3)  # ...while the listener's next read comes on the half-open connection
            proxy.delay = 0.0

            async with asyncio.timeout(GUARD):
                while not any(envelope.stream_id == "stream_a" for envelope in heard):
                    sender.publish(Envelope.for_message(ALERT, "stream_a", b"{}", origin="sender:1"))
                    arrived.clear()
                    await asyncio.wait([asyncio.ensure_future(arrived.wait())], timeout=0.5)
            assert [task for task in listener._tasks if task.done()] == [], "every task of the broker still runs"
        finally:
            await listener.close()
            await sender.close()
            await proxy.close()
