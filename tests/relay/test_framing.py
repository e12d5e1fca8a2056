"""The relay's frame reader against a real client: fragments, pings, closing, sizes."""

from __future__ import annotations

import asyncio
import base64
import gc

import orjson
import pytest

from relay.wire import encode_binary_frame
from tests.raw_websocket import RawWebSocket, client_frame
from tests.support import GUARD, JPEG, Client, RelayHarness, running_relay

TEXT, BINARY, CONT, PING, PONG = 0x1, 0x2, 0x0, 0x9, 0xA


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """WebSocket behaviour does not depend on the database: SQLite only."""
    return sqlite_url


async def test_fragmented_messages_are_reassembled(relay: RelayHarness) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    producer = await relay.producer(token, stream_id)
    viewer = await relay.consumer(token, stream_id, consumes=["video-frame"], frameFormat="binary")
    whole = encode_binary_frame(stream_id, JPEG * 50, timestamp=3)
    await producer.ws.send([whole[:7], whole[7:5000], whole[5000:]])  # one message, three fragments
    header, image = await viewer.recv()  # type: ignore[misc]
    assert header["timestamp"] == 3
    assert image == JPEG * 50

    text = orjson.dumps(
        {"type": "video-frame", "streamId": stream_id, "data": base64.b64encode(JPEG).decode(), "timestamp": 4}
    ).decode()
    await producer.ws.send([text[:10], text[10:]])
    header, image = await viewer.recv()  # type: ignore[misc]
    assert header["timestamp"] == 4
    assert image == JPEG


async def test_protocol_pings_are_answered_between_messages(relay: RelayHarness) -> None:
    _, token = await relay.user()
    client = await relay.connect(token)
    pong = await client.ws.ping(b"are you there")
    await pong  # resolves when the relay's pong with the same payload arrives
    await client.send({"type": "ping"})
    await client.expect("pong")


async def test_every_length_encoding_is_read(relay: RelayHarness) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    producer = await relay.producer(token, stream_id)
    viewer = await relay.consumer(token, stream_id, consumes=["video-frame"], frameFormat="binary")
    for size in (1, 125 - 80, 126, 60_000, 70_000, 1_000_000):  # 7-bit, 16-bit and 64-bit lengths
        image = bytes(range(256)) * (size // 256) + b"\xff" * (size % 256)
        await producer.send_frame(stream_id, image)
        _, received = await viewer.recv()  # type: ignore[misc]
        assert received == image


async def _raw_producer_and_viewer(relay: RelayHarness) -> tuple[str, RawWebSocket, Client]:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    viewer = await relay.consumer(token, stream_id, consumes=["video-frame"], frameFormat="binary")
    return stream_id, await RawWebSocket.open(relay.port, token), viewer


def _register(stream_id: str) -> bytes:
    return client_frame(TEXT, orjson.dumps({"type": "register", "streamId": stream_id, "consumes": []}))


def _binary_frames(stream_id: str, sizes: tuple[int, ...]) -> list[bytes]:
    """Client frames of binary video frames whose image is ``size`` times the byte ``n`` (their timestamp)."""
    images = (bytes([n]) * size for n, size in enumerate(sizes))
    return [client_frame(BINARY, encode_binary_frame(stream_id, image, timestamp=n)) for n, image in enumerate(images)]


async def _received(viewer: Client, sizes: tuple[int, ...]) -> None:
    for n, size in enumerate(sizes):
        header, image = await viewer.recv()  # type: ignore[misc]
        assert (header["timestamp"], image) == (n, bytes([n]) * size), f"frame {n}"


async def test_a_register_and_the_frames_behind_it_in_one_write_take_effect_in_order(relay: RelayHarness) -> None:
    """A phone may send its first frames right behind its register: they wait for the register's
    database lookup, then all go out, in order, and a ping among them is answered."""
    stream_id, producer, viewer = await _raw_producer_and_viewer(relay)
    sizes = (5, 300, 70_000, 1)
    frames = _binary_frames(stream_id, sizes)
    producer.send(_register(stream_id) + b"".join(frames[:2]) + client_frame(PING, b"between") + b"".join(frames[2:]))
    answers = {await producer.read_frame(), await producer.read_frame()}  # a pong needs no turn: either first
    assert {(frame.opcode, b'"registered"' in frame.payload or frame.payload) for frame in answers} == {
        (TEXT, True),
        (PONG, b"between"),
    }
    await _received(viewer, sizes)
    await producer.close()


async def test_frames_cut_at_any_byte_arrive_whole(relay: RelayHarness) -> None:
    """A frame's header, mask and payload may each come in pieces (a slow network), and a piece may end
    one frame and start the next: every frame arrives whole, and a ping cut in pieces is answered."""
    stream_id, producer, viewer = await _raw_producer_and_viewer(relay)
    producer.send(_register(stream_id))
    assert b'"registered"' in (await producer.read_frame()).payload
    sizes = (1, 200, 66_000, 3)
    frames = _binary_frames(stream_id, sizes)
    wire = b"".join(frames[:2]) + client_frame(PING, b"cut") + b"".join(frames[2:])
    pieces = [wire[at : at + 1] for at in range(60)]  # the first headers and masks byte by byte
    pieces += [wire[at : at + 997] for at in range(60, len(wire), 997)]
    for piece in pieces:
        producer.send(piece)
        await producer.writer.drain()
    pong = await producer.read_frame()
    assert (pong.opcode, pong.payload) == (PONG, b"cut")
    await _received(viewer, sizes)
    await producer.close()


@pytest.mark.parametrize("ending", ["close frame", "end of stream", "relay closes", "bad frame"])
async def test_a_closed_connection_is_freed_without_the_cycle_collector(relay: RelayHarness, ending: str) -> None:
    """Closed connections leave no reference cycles: in a flood of connections, full collections that
    walk thousands of dead ones were what stalled the streams (issue 9)."""
    _, token = await relay.user()
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        client = await RawWebSocket.open(relay.port, token)
        client.send(client_frame(TEXT, b'{"type": ', fin=False) + client_frame(CONT, b'"ping"}'))  # the library's
        assert (await client.read_frame()).payload == b'{"type":"pong"}'
        if ending == "close frame":
            client.send(client_frame(0x8, b"\x03\xe8"))
            await client.closed_with()
        elif ending == "relay closes":
            next(iter(relay.relay.connections)).terminate(1001, "going away")
            await client.closed_with()
        elif ending == "bad frame":
            client.send(client_frame(0x3, b"x"))
            await client.closed_with()
        await client.close()
        await relay.relay.connections.all_gone(GUARD)
        await asyncio.sleep(0)  # the transport lets go of its protocol after connection_lost returns
        gc.collect()
        left = {type(found).__qualname__ for found in gc.garbage} & {
            "WebSocketConnection",
            "Session",
            "Connection",
            "Outbox",
            "Protocol",
            "TCPTransport",
        }
        assert not left, f"in reference cycles after the close: {sorted(left)}"
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


async def test_a_fragmented_message_over_the_limit_closes_with_1009(database_url: str) -> None:
    async with running_relay(database_url, ping_interval=0, max_message_bytes=10_000) as relay:
        _, token = await relay.user()
        client = await relay.connect(token)
        await client.ws.send([b"x" * 6000, b"x" * 6000])
        code, _ = await client.closed()
        assert code == 1009


async def test_the_kernel_send_buffer_can_be_capped(database_url: str) -> None:
    import socket

    async with running_relay(database_url, ping_interval=0, socket_send_buffer=150_000) as relay:
        _, token = await relay.user()
        await relay.connect(token)
        (websocket,) = relay.relay.connections
        assert websocket.transport is not None
        server_socket = websocket.transport.get_extra_info("socket")
        # Linux reports twice what was set; an untouched socket starts at tcp_wmem's default (16 KB).
        assert server_socket.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == 2 * 150_000
