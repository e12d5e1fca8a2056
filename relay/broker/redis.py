"""The Redis broker: relay nodes share frames, alerts and status over Redis pub/sub.

Each stream has two channels: ``vigil:frames:<id>`` for its video frames and
``vigil:stream:<id>`` for everything else (alerts, status, reviews).  On Redis 7
and later they are *sharded* channels (``SPUBLISH``/``SSUBSCRIBE``): a channel
lives on the shard that owns its key slot, so the streams of a Redis Cluster
spread over its shards; older Redis gets plain ``PUBLISH``/``SUBSCRIBE``.  A
node subscribes to the channels its local consumers want, and only those, so a
node carries only the traffic its own clients want: the node of a phone that
nobody there watches hears its alerts, not its frames coming back (which were a
third of what Redis sent in ``benchmarks/nodes.py``).  Messages for local consumers
are delivered directly, without the round trip through Redis; messages coming
back from Redis that this node published are skipped.

Every node also renews a key of its own (``vigil:alive:<node>``) with a short
time to live, so the other nodes can tell that it died without a goodbye
(:meth:`RedisBroker.nodes_alive`, used by the status tracker's sweep).

Publishing never blocks the caller: envelopes queue here and one task sends
them in pipelined batches.  If Redis falls behind, the oldest queued frames are
dropped.  If Redis is unreachable, frames are lost for the other nodes (and
counted), while alerts and status messages wait here, in order, up to
:data:`MAX_RETAINED`, and go out when Redis is back.  When this node's
subscription comes back after an outage, ``on_reconnect`` is called: the node
then reads from the database the alerts it missed meanwhile
(:mod:`relay.routing.continuity`).

The pub/sub connection is read by one task and its subscriptions changed by
another.  After an outage, whichever touches it first reconnects it, and the
reconnect's handshake reads Redis's answers while the connection already counts
as open: the other task may then start a read of its own, which redis-py (an
asyncio stream allows one reader) refuses with a ``RuntimeError``.  Both tasks
take that for what it is, the connection not being ready yet, and try again
(:data:`CONNECTION_BUSY`); neither may die of it, or the node would never hear
from Redis again, or never change its subscriptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Final

import redis.asyncio as redis
from redis.exceptions import RedisError

from relay.broker.base import Deliver
from relay.metrics import COUNTERS
from relay.wire import VIDEO_FRAME
from relay.wire.envelope import Envelope

log = logging.getLogger("relay.broker.redis")

CHANNEL_PREFIX: Final = "vigil:stream:"
FRAMES_PREFIX: Final = "vigil:frames:"
ALIVE_PREFIX: Final = "vigil:alive:"
SUBSCRIBE_WAIT: Final = 5.0
RETRY_DELAY: Final = 0.5
CLOSE_WAIT: Final = 5.0
"""Seconds a stopping broker waits for each of its tasks to finish being cancelled."""
CONNECTION_BUSY: Final = (RedisError, RuntimeError)
"""What a pub/sub call raises when Redis is away, or when the other task is still reconnecting (see above)."""
MAX_RETAINED: Final = 10_000
"""Alerts and status messages kept for the other nodes while Redis is unreachable; beyond, the oldest go."""


class RedisBroker:
    """See the module docstring."""

    def __init__(self, url: str, node_id: str, *, max_pending_frames: int = 256, liveness_ttl: float = 6.0) -> None:
        self._url = url
        self._alive_key = ALIVE_PREFIX + node_id
        self._liveness_ttl = liveness_ttl
        self._node_prefix = f"{node_id}:"
        self._max_pending_frames = max_pending_frames
        self._deliver: Deliver | None = None
        self._on_reconnect: Callable[[], None] | None = None
        self._client: redis.Redis | None = None
        self._pubsub: Any = None
        self.sharded = False
        self._outgoing: deque[tuple[bytes, bytes, bool]] = deque()
        self._pending_frames = 0
        self._outgoing_ready = asyncio.Event()
        self._wanted: set[bytes] = set()
        self._subscribed: set[bytes] = set()
        self._waiters: dict[bytes, list[asyncio.Future[None]]] = {}
        self._interest_changed = asyncio.Event()
        self._first_subscription = asyncio.Event()  # the client's pub/sub connection exists from the first one
        self._tasks: list[asyncio.Task[None]] = []
        self.frames_dropped = 0

    @property
    def backlog(self) -> int:
        return len(self._outgoing)

    async def start(self, deliver: Deliver, on_reconnect: Callable[[], None] | None = None) -> None:
        self._deliver = deliver
        self._on_reconnect = on_reconnect
        # RESP2: redis-py's RESP3 parser builds a debug string of every pub/sub message, logged or not (half a
        # consumer node's CPU at 40 KB frames: tests/relay/test_redis_message_cost.py)
        self._client = redis.from_url(self._url, protocol=2)
        info = await self._client.info("server")
        self.sharded = int(str(info.get("redis_version", "0")).split(".")[0]) >= 7
        await self._renew_liveness()
        self._pubsub = self._client.pubsub()
        self._tasks = [
            asyncio.create_task(self._send_outgoing()),
            asyncio.create_task(self._listen()),
            asyncio.create_task(self._follow_interest()),
            asyncio.create_task(self._keep_alive()),
        ]
        log.info("Redis broker on %s pub/sub", "sharded" if self.sharded else "plain")

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, stuck = await asyncio.wait(self._tasks, timeout=CLOSE_WAIT)
            for task in stuck:  # a cancellation lost in the client (see _send_outgoing): never wait for ever
                log.warning("Redis broker task %s did not stop when cancelled", task.get_coro())
        if self._pubsub is not None:
            await self._pubsub.aclose()
        if self._client is not None:
            with contextlib.suppress(RedisError):
                await self._client.delete(self._alive_key)  # a clean stop: nobody needs to wait for the key to expire
            await self._client.aclose()
        self._deliver = None

    # ------------------------------------------------------------------ liveness

    async def _renew_liveness(self) -> None:
        assert self._client is not None
        await self._client.set(self._alive_key, b"1", px=int(self._liveness_ttl * 1000))

    async def _keep_alive(self) -> None:
        """Renew this node's key three times per time to live."""
        while True:
            await asyncio.sleep(self._liveness_ttl / 3)
            try:
                await self._renew_liveness()
            except RedisError as error:
                log.warning("could not renew this node's liveness key: %s", error)

    async def nodes_alive(self, node_ids: Sequence[str]) -> dict[str, bool] | None:
        """Which nodes' keys exist; None while Redis is unreachable or has lost this node's own key.

        Redis restarted without its data has lost every node's key at once: no
        node is called dead on that until Redis has been up for a whole time to
        live, so that every live node has renewed its key by then (it tries three
        times per time to live, and its first try after the restart may fail on a
        connection Redis closed).  Whichever node renewed first must not judge the
        others meanwhile, which is why Redis's own uptime decides, not this node's key.
        """
        assert self._client is not None
        try:
            pipeline = self._client.pipeline(transaction=False)
            pipeline.info("server")
            pipeline.exists(self._alive_key)
            for node_id in node_ids:
                pipeline.exists(ALIVE_PREFIX + node_id)
            server, own, *others = await pipeline.execute()
            if not own:
                await self._renew_liveness()
                return None
            if int(server.get("uptime_in_seconds", 0)) < self._liveness_ttl:
                return None
        except RedisError as error:
            log.warning("cannot tell which nodes are alive: %s", error)
            return None
        return {node_id: bool(found) for node_id, found in zip(node_ids, others, strict=True)}

    # ------------------------------------------------------------------ publishing

    def publish(self, envelope: Envelope) -> None:
        if self._deliver is None:
            return
        self._deliver(envelope)
        is_frame = envelope.type == VIDEO_FRAME
        if is_frame:
            if self._pending_frames >= self._max_pending_frames:
                self._drop_oldest_frame()
                COUNTERS.broker_frames_lost += 1
            self._pending_frames += 1
        self._outgoing.append((_channel(envelope.stream_id, frames=is_frame), envelope.to_bytes(), is_frame))
        self._outgoing_ready.set()

    def _drop_oldest_frame(self) -> None:
        for index, (_, _, is_frame) in enumerate(self._outgoing):
            if is_frame:
                del self._outgoing[index]
                self._pending_frames -= 1
                self.frames_dropped += 1
                return

    async def _send_outgoing(self) -> None:
        assert self._client is not None
        while True:
            await self._outgoing_ready.wait()
            self._outgoing_ready.clear()
            while self._outgoing:
                batch = list(self._outgoing)
                self._outgoing.clear()
                self._pending_frames = 0
                pipeline = self._client.pipeline(transaction=False)
                for channel, data, _ in batch:
                    if self.sharded:
                        pipeline.spublish(channel, data)
                    else:
                        pipeline.publish(channel, data)
                try:
                    await pipeline.execute()
                except RedisError as error:
                    self._keep_for_later(batch, error)
                    await asyncio.sleep(RETRY_DELAY)
                _raise_if_cancelled()

    def _keep_for_later(self, batch: list[tuple[bytes, bytes, bool]], error: RedisError) -> None:
        """Redis failed: frames are lost for the other nodes; alerts and status wait for it, in order."""
        kept = [message for message in batch if not message[2]]
        lost_frames = len(batch) - len(kept)
        COUNTERS.broker_publish_failures += 1
        COUNTERS.broker_frames_lost += lost_frames
        self._outgoing.extendleft(reversed(kept))
        while len(self._outgoing) > MAX_RETAINED:  # keep the newest; the others fill gaps from the database
            self._outgoing.popleft()
        self._pending_frames = sum(message[2] for message in self._outgoing)
        log.warning(
            "Redis failed (%s): %d frames lost for the other nodes, %d messages wait", error, lost_frames, len(kept)
        )

    # ------------------------------------------------------------------ receiving

    def interest(self, stream_id: str, interested: bool, *, frames: bool) -> None:
        channel = _channel(stream_id, frames=frames)
        if interested:
            self._wanted.add(channel)
        else:
            self._wanted.discard(channel)
        self._interest_changed.set()

    async def listening(self, stream_id: str) -> None:
        """Wait until this node receives what it wants of the stream from the other nodes."""
        waiters: list[asyncio.Future[None]] = []
        for frames in (True, False):
            channel = _channel(stream_id, frames=frames)
            if channel in self._wanted and channel not in self._subscribed:
                waiters.append(asyncio.get_running_loop().create_future())
                self._waiters.setdefault(channel, []).append(waiters[-1])
        if not waiters:
            return
        try:
            await asyncio.wait_for(asyncio.gather(*waiters), SUBSCRIBE_WAIT)
        except TimeoutError:
            log.warning("Redis did not confirm the subscription to %s in %.0f s", stream_id, SUBSCRIBE_WAIT)

    async def _follow_interest(self) -> None:
        """Subscribe and unsubscribe to match what the hub wants, one change at a time."""
        while True:
            await self._interest_changed.wait()
            self._interest_changed.clear()
            try:
                gained = self._wanted - self._subscribed
                lost = self._subscribed - self._wanted
                if gained:
                    await (self._pubsub.ssubscribe if self.sharded else self._pubsub.subscribe)(*gained)
                    self._first_subscription.set()
                if lost:
                    self._subscribed -= lost
                    await (self._pubsub.sunsubscribe if self.sharded else self._pubsub.unsubscribe)(*lost)
            except CONNECTION_BUSY as error:
                log.warning("could not change Redis subscriptions: %s", error)
                await asyncio.sleep(RETRY_DELAY)
                self._interest_changed.set()

    async def _listen(self) -> None:
        broken = False
        await self._first_subscription.wait()  # get_message needs the connection a subscription opens
        while True:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except CONNECTION_BUSY as error:
                if not broken:
                    log.warning("Redis subscription failed: %s; retrying", error)
                broken = True
                await asyncio.sleep(RETRY_DELAY)
                continue
            if broken:  # the client reconnected and subscribed again by itself
                broken = False
                log.info("Redis subscription is back")
                if self._on_reconnect is not None:
                    self._on_reconnect()
            if message is None:
                continue
            kind, channel = message["type"], message["channel"]
            if kind in ("subscribe", "ssubscribe"):
                self._subscribed.add(channel)
                for waiter in self._waiters.pop(channel, []):
                    if not waiter.done():
                        waiter.set_result(None)
            elif kind in ("message", "smessage"):
                self._receive(message["data"])

    def _receive(self, data: bytes) -> None:
        try:
            envelope = Envelope.from_bytes(data)
        except Exception:
            log.exception("dropped a malformed message from Redis")
            return
        if envelope.origin.startswith(self._node_prefix) or self._deliver is None:
            return
        self._deliver(envelope)


def _channel(stream_id: str, *, frames: bool) -> bytes:
    return ((FRAMES_PREFIX if frames else CHANNEL_PREFIX) + stream_id).encode()


def _raise_if_cancelled() -> None:
    """Stop if this task was cancelled while redis-py had it: a cancellation that arrives while the client
    reconnects after a Redis restart can be absorbed there (seen 1 stop in 8 in a test that restarts Redis:
    the task went back to waiting for messages, and the relay's stop waited for ever)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
