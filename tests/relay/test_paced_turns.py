"""The paced frame path (frames fanned out in the flusher) against real sockets, within one turn of the loop.

What one read of a producer's socket brings is acted upon in one turn: frames
fanned out in it wait in the flusher while a reply queued between them must
still come after the frames before it and before the frames after it, for every
consumer, in both forms.
"""

from __future__ import annotations

import base64

import orjson
import pytest

from relay.wire import encode_binary_frame
from tests.raw_websocket import RawWebSocket, ServerFrame, client_frame
from tests.support import JPEG, Client, RelayHarness

TEXT, BINARY = 0x1, 0x2


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """The flusher does not depend on the database: SQLite only."""
    return sqlite_url


def _frame(stream_id: str, timestamp: int) -> bytes:
    return client_frame(BINARY, encode_binary_frame(stream_id, JPEG, timestamp=timestamp))


def _text(message: dict[str, object]) -> bytes:
    return client_frame(TEXT, orjson.dumps(message))


def _what(frame: ServerFrame) -> object:
    """A server frame as the test compares it: a video frame's timestamp, or a text message's type."""
    if frame.opcode == BINARY:
        header_length = int.from_bytes(frame.payload[:4], "big")
        return orjson.loads(frame.payload[4 : 4 + header_length])["timestamp"]
    message = orjson.loads(frame.payload)
    return message["timestamp"] if message["type"] == "video-frame" else message["type"]


async def _frames(viewer: Client, count: int) -> list[int]:
    received = []
    for _ in range(count):
        message = await viewer.recv()
        header = message[0] if isinstance(message, tuple) else message
        assert header["type"] == "video-frame", header
        received.append(header["timestamp"])
    return received


async def _producing_consumer(relay: RelayHarness) -> tuple[str, RawWebSocket, Client, Client]:
    """A stream whose producer consumes its own frames too, and a binary and a JSON viewer of it."""
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    binary = await relay.consumer(token, stream_id, consumes=["video-frame"], frameFormat="binary")
    text = await relay.consumer(token, stream_id, consumes=["video-frame"], frameFormat="json")
    producer = await RawWebSocket.open(relay.port, token)
    producer.send(_text({"type": "register", "streamId": stream_id, "consumes": ["video-frame"]}))
    assert _what(await producer.read_frame()) == "registered"
    return stream_id, producer, binary, text


async def test_replies_between_frames_of_one_read_keep_their_place_for_every_consumer(relay: RelayHarness) -> None:
    stream_id, producer, binary, text = await _producing_consumer(relay)
    ping = _text({"type": "ping"})
    producer.send(
        _frame(stream_id, 0) + _frame(stream_id, 1) + ping + _frame(stream_id, 2) + ping + _frame(stream_id, 3)
    )
    seen = [_what(await producer.read_frame()) for _ in range(6)]
    assert seen == [0, 1, "pong", 2, "pong", 3], "the producer's own frames and its replies, in the order acted upon"
    assert await _frames(binary, 4) == [0, 1, 2, 3]
    assert await _frames(text, 4) == [0, 1, 2, 3]
    await producer.close()


async def test_a_frame_behind_an_unsubscribe_in_the_same_read_is_refused_and_goes_nowhere(relay: RelayHarness) -> None:
    """The parser's shortcut for ids a connection has a permit for must not outlive the permit."""
    stream_id, producer, binary, text = await _producing_consumer(relay)
    unsubscribe = _text({"type": "unsubscribe", "streamId": stream_id})
    producer.send(_frame(stream_id, 0) + unsubscribe + _frame(stream_id, 1))
    assert _what(await producer.read_frame()) == 0, "sent before the unsubscribe: it comes before its answer"
    assert _what(await producer.read_frame()) == "unsubscribed"
    refusal = orjson.loads((await producer.read_frame()).payload)
    assert (refusal["type"], refusal["code"]) == ("error", "not-registered"), refusal
    # A JSON frame (a marker) from a second producer shows the viewers got nothing between.
    producer.send(_text({"type": "register", "streamId": stream_id, "consumes": []}))
    assert _what(await producer.read_frame()) == "registered"
    marker = {"type": "video-frame", "streamId": stream_id, "data": base64.b64encode(JPEG).decode(), "timestamp": 9}
    producer.send(_text(marker))
    assert await _frames(binary, 2) == [0, 9]
    assert await _frames(text, 2) == [0, 9]
    await producer.close()
