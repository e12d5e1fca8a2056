"""A client that goes while one of its messages waits for the database leaves nothing registered."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from relay.metrics import COUNTERS
from tests.raw_websocket import RawWebSocket, client_frame
from tests.support import GUARD, RelayHarness

TEXT = 0x1


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """The ownership lookup is stubbed: SQLite only."""
    return sqlite_url


@pytest.mark.parametrize("kind", ["subscribe", "register"])
async def test_a_subscribe_or_register_in_flight_when_the_connection_goes_leaves_nothing_behind(
    relay: RelayHarness, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """A client that goes while its subscribe (or register) waits for the ownership lookup must not be
    registered once the lookup answers: a gone consumer would be counted as a frame's target for good
    (``frames.delivered``) and keep the node listening to the stream, a gone producer keep it online."""
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    owners = relay.relay.router.owners
    owns, entered, release = owners.owns, asyncio.Event(), asyncio.Event()

    async def slow_owns(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        await release.wait()
        return await owns(*args, **kwargs)

    monkeypatch.setattr(owners, "owns", slow_owns)
    socket = await RawWebSocket.open(relay.port, token)
    message = {"type": kind, "streamId": stream_id, "consumes": ["video-frame"]}
    socket.send(client_frame(TEXT, orjson.dumps(message)))
    async with asyncio.timeout(GUARD):
        await entered.wait()
    (connection,) = relay.relay.connections
    handling = connection.stop_reading()
    connection.terminate(1011, "cut", abort=True)
    await relay.relay.connections.all_gone(GUARD)
    release.set()
    if handling is not None:
        async with asyncio.timeout(GUARD):
            await handling
    await asyncio.sleep(0.1)
    assert not relay.relay.hub.get_consumers(stream_id, "video-frame"), "a gone connection is no consumer"
    assert not relay.relay.hub.has_consumers(stream_id)
    assert relay.relay.hub.get_producer(stream_id) is None
    phone = await relay.producer(token, stream_id)
    delivered = COUNTERS.frames_delivered
    await phone.send_frame(stream_id)
    await phone.send({"type": "ping"})
    await phone.expect("pong")  # the frame before it was routed
    assert COUNTERS.frames_delivered == delivered, "no target: nobody to count it for"
