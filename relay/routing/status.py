"""Stream status: written in order, announced after it is written.

A stream is ``online`` when its producer registers, ``streaming`` from its first
frame, ``offline`` when the producer goes.  Each change is queued here and one
writer task stores it (with ``lastSeen``) and then publishes a ``stream-status``
message, so the database and the consumers always see the changes of a stream
in the order they happened.  Nothing here runs per frame: while a stream
streams, its ``lastSeen`` is refreshed for all streaming streams at once every
``flush_interval`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime

from relay.broker import Broker
from relay.clock import utcnow
from relay.representation import status_message
from relay.store import Streams, is_unavailable
from relay.wire import STREAM_STATUS, encode
from relay.wire.envelope import Envelope

log = logging.getLogger("relay.status")

RETRY_FIRST = 0.5
RETRY_MOST = 5.0
"""Seconds between attempts to write a status change while the database is unreachable."""


class StatusTracker:
    """Serialises status writes and announcements; see the module docstring."""

    def __init__(self, streams: Streams, broker: Broker, *, origin: str, flush_interval: float = 10.0) -> None:
        self._streams = streams
        self._broker = broker
        self._origin = origin
        self._flush_interval = flush_interval
        self._changes: asyncio.Queue[tuple[str, str, datetime]] = asyncio.Queue()
        self._streaming: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._write_changes()), asyncio.create_task(self._refresh_last_seen())]

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
                await self._write(stream_id, status, when)
                text = encode(status_message(stream_id, status, when))
                self._broker.publish(Envelope.for_message(STREAM_STATUS, stream_id, text, origin=self._origin))
            except Exception:
                log.exception("could not record status %s of stream %s", status, stream_id)
            finally:
                self._changes.task_done()

    async def _write(self, stream_id: str, status: str, when: datetime) -> None:
        """Write one change; while the database is unreachable, keep trying (later changes wait, in order)."""
        delay = RETRY_FIRST
        while True:
            try:
                await self._streams.set_status(stream_id, status, when)
                return
            except Exception as error:
                if not is_unavailable(error):
                    raise
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
