"""A Redis broker stops when cancelled even if the client absorbs the cancellation (socket-free).

Seen in a test that restarts Redis (about 1 stop in 8): the publishing task was
cancelled while redis-py reconnected, the cancellation was absorbed there, the
task went back to waiting for messages, and the relay's stop waited for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from relay.broker.redis import RedisBroker


class AbsorbingPipeline:
    """A pipeline whose execute swallows a cancellation, as the client did while reconnecting."""

    def __init__(self, started: asyncio.Event) -> None:
        self._started = started

    def publish(self, *_: Any) -> None:
        pass

    async def execute(self) -> list[Any]:
        self._started.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(3600)
        return []


class Client:
    def __init__(self, started: asyncio.Event) -> None:
        self._started = started

    def pipeline(self, transaction: bool) -> AbsorbingPipeline:
        return AbsorbingPipeline(self._started)


async def test_a_publisher_whose_cancellation_was_absorbed_still_stops() -> None:
    broker = RedisBroker("redis://unused", "node")
    started = asyncio.Event()
    broker._client = Client(started)  # type: ignore[assignment]
    sending = asyncio.create_task(broker._send_outgoing())
    broker._outgoing.append((b"channel", b"alert", False))
    broker._outgoing_ready.set()
    await started.wait()
    sending.cancel()
    done, _ = await asyncio.wait([sending], timeout=5)
    assert done, "the task stopped instead of waiting for more messages"
    assert sending.cancelled()
