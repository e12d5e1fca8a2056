"""Stream status: written in order, announced after it is written.

A stream is ``online`` when its producer registers, ``streaming`` from its first
frame, ``offline`` when the producer goes.  Each change is queued here and one
writer task stores it (with ``lastSeen``) and then publishes a ``stream-status``
message, so the database and the consumers always see the changes of a stream
in the order they happened.  Nothing here runs per frame: while a stream
streams, its ``lastSeen`` is refreshed for all streaming streams at once every
``flush_interval`` seconds.

With several nodes, each stream records the node its producer is on, and a
node's changes apply only while the stream is still its own: a phone that
registered again elsewhere is not taken ``offline`` when its old connection
finally goes.  A node that dies without a word leaves its streams behind; the
broker says which nodes are alive (a key that each node renews, with a time to
live), and every few seconds each node sweeps the streams of nodes that are no
longer: written ``offline`` and announced on every node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime

from relay.broker import Broker
from relay.clock import utcnow
from relay.metrics import COUNTERS
from relay.representation import status_message
from relay.store import Streams, is_unavailable
from relay.wire import STREAM_STATUS, encode
from relay.wire.envelope import Envelope

log = logging.getLogger("relay.status")

RETRY_FIRST = 0.5
RETRY_MOST = 5.0
"""Seconds between attempts to write a status change while the database is unreachable."""


class StatusTracker:
    """Serialises status writes and announcements; see the module docstring.

    ``sweep_interval`` is how often to look for dead nodes (0: never, for a
    single node; the node's own start takes over what a previous run left).
    """

    def __init__(
        self,
        streams: Streams,
        broker: Broker,
        *,
        node_id: str,
        flush_interval: float = 10.0,
        sweep_interval: float = 0.0,
    ) -> None:
        self._streams = streams
        self._broker = broker
        self._node_id = node_id
        self._origin = f"{node_id}:0"
        self._flush_interval = flush_interval
        self._sweep_interval = sweep_interval
        self._changes: asyncio.Queue[tuple[str, str, datetime]] = asyncio.Queue()
        self._streaming: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._write_changes()), asyncio.create_task(self._refresh_last_seen())]
        if self._sweep_interval > 0:
            self._tasks.append(asyncio.create_task(self._sweep_dead_nodes()))

    async def close(self) -> None:
        """Write what is queued, then stop."""
        await self._changes.join()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def set(self, stream_id: str, status: str) -> None:
        """Record a status change now; it is written and announced shortly, in order."""
        if status == "streaming":
            self._streaming.add(stream_id)
        else:
            self._streaming.discard(stream_id)
        self._changes.put_nowait((stream_id, status, utcnow()))

    async def settled(self) -> None:
        """Wait until every change so far is written and announced."""
        await self._changes.join()

    async def _write_changes(self) -> None:
        while True:
            stream_id, status, when = await self._changes.get()
            try:
                if await self._write(stream_id, status, when):
                    self._announce(stream_id, status, when)
            except Exception:
                log.exception("could not record status %s of stream %s", status, stream_id)
            finally:
                self._changes.task_done()

    def _announce(self, stream_id: str, status: str, when: datetime) -> None:
        text = encode(status_message(stream_id, status, when))
        self._broker.publish(Envelope.for_message(STREAM_STATUS, stream_id, text, origin=self._origin))

    async def _write(self, stream_id: str, status: str, when: datetime) -> bool:
        """Write one change; whether it took effect.  While the database is unreachable, keep trying
        (later changes wait, in order)."""
        delay = RETRY_FIRST
        while True:
            try:
                return await self._streams.set_status(stream_id, status, when, self._node_id)
            except Exception as error:
                if not is_unavailable(error):
                    raise
                COUNTERS.database_unavailable += 1
                log.warning("status of %s waits for the database (%s); retrying in %.1f s", stream_id, error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MOST)

    async def _refresh_last_seen(self) -> None:
        while True:
            await asyncio.sleep(self._flush_interval)
            if not self._streaming:
                continue
            try:
                await self._streams.touch(list(self._streaming), utcnow())
            except Exception:
                log.exception("could not refresh lastSeen of %d streams", len(self._streaming))

    async def _sweep_dead_nodes(self) -> None:
        """Every ``sweep_interval``: streams whose producer node is no longer alive go offline, announced."""
        while True:
            try:
                await self.sweep()
            except Exception as error:
                log.warning("could not look for dead nodes: %s", error)
            await asyncio.sleep(self._sweep_interval)

    async def sweep(self) -> list[str]:
        """One sweep; the streams it took offline (several nodes may sweep at once: each takes its own rows)."""
        nodes = await self._streams.producer_nodes() - {self._node_id}
        if not nodes:
            return []
        alive = await self._broker.nodes_alive(sorted(nodes))
        if alive is None:
            return []  # the broker cannot tell now (Redis is down or restarted): sweep nobody
        released: list[str] = []
        for node in nodes:
            if alive.get(node, True):
                continue
            when = utcnow()
            streams = await self._streams.release_node(node, when)
            if streams:
                log.warning("node %s is gone: %d of its streams are now offline", node, len(streams))
            for stream_id in streams:
                self._announce(stream_id, "offline", when)
            released += streams
        return released
