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
import redis.asyncio as aioredis

from relay.broker.redis import ALIVE_PREFIX, RedisBroker
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
            listener.interest("stream_a", True, frames=False)
            await listener.listening("stream_a")

            proxy.cut()  # Redis is gone for the listening node
            async with asyncio.timeout(GUARD):
                await proxy.attempt_while_cut()
            proxy.delay = 0.5  # and when it is back, its answers are slow: the reconnect's handshake takes seconds
            proxy.restore()
            listener.interest("stream_b", True, frames=False)  # the subscription change reconnects first...
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


async def test_a_live_node_is_not_called_dead_because_redis_restarted_empty() -> None:
    """Redis restarted without its data has lost every node's liveness key at once.

    A node that finds its own key gone judges nobody (as before); but one whose
    own renewal came first found its key and judged the others, whose renewal
    had not come yet (or failed once on a connection Redis had closed), and
    called a live node dead, taking its streams offline: the soak saw ``node … is
    gone`` for a node that was serving.  Until Redis has been up a whole time to
    live nobody may be judged; after that a node whose key is missing is dead.
    """
    ttl = 2.0
    async with private_redis() as redis:
        judge = RedisBroker(redis.url, "judge", liveness_ttl=ttl)
        await judge.start(lambda _: None)
        try:
            await asyncio.sleep(ttl + 1)  # Redis has been up a time to live: nodes are judged
            async with aioredis.from_url(redis.url) as plain:  # the other node, alive
                await plain.set(ALIVE_PREFIX + "other", b"1", px=int(ttl * 1000))
            assert await judge.nodes_alive(["other"]) == {"other": True}
            await redis.stop()
            await redis.start()  # empty: both keys are gone; the other node's renewal has not come yet
            async with asyncio.timeout(GUARD), aioredis.from_url(redis.url) as plain:
                while True:  # until the judge's own renewal came, first (a key in Redis: nothing to await)
                    if await plain.exists(ALIVE_PREFIX + "judge"):
                        break
                    await asyncio.sleep(0.05)
            assert await judge.nodes_alive(["other"]) is None, "Redis is younger than a time to live: nobody is judged"
            await asyncio.sleep(ttl + 1)
            assert await judge.nodes_alive(["other"]) == {"other": False}, "later, a missing key is a dead node"
        finally:
            await judge.close()
