"""The outbox's queue rules and the hub's registry, without sockets."""

from __future__ import annotations

import asyncio

from tornado.iostream import StreamClosedError

from relay.connection import Connection
from relay.envelope import Envelope, websocket_frame
from relay.hub import Hub
from relay.outbox import Outbox
from relay.protocol import encode_binary_frame, parse_binary
from tests.support import JPEG


class SlowStream:
    """A stream whose writes complete only when the test says so."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.pending: list[asyncio.Future[None]] = []
        self.blocked = True
        self.closed = False

    def writing(self) -> bool:
        return bool(self.pending)

    def write_to_fd(self, data: memoryview) -> int:
        if self.closed:
            raise BrokenPipeError()
        if self.blocked:
            return 0
        self.written.append(bytes(data))
        return len(data)

    def write(self, data: bytes | memoryview) -> asyncio.Future[None]:
        if self.closed:
            raise StreamClosedError()
        self.written.append(bytes(data))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.blocked:
            self.pending.append(future)
        else:
            future.set_result(None)
        return future

    async def flush(self) -> None:
        self.blocked = False
        while self.pending:
            self.pending.pop(0).set_result(None)
            await asyncio.sleep(0)


async def test_frames_are_dropped_oldest_first_and_control_never() -> None:
    stream = SlowStream()
    outbox = Outbox(stream, max_frames=2)
    outbox.send((b"<c0>",))
    await asyncio.sleep(0)  # the turn ends: c0 is handed to the (blocked) socket
    for index in range(5):
        outbox.send_frame((b"<f", f"{index}>".encode()))
    outbox.send((b"<c1>",))
    outbox.send((b"<c2>",))
    assert outbox.frames_dropped == 3
    await stream.flush()
    assert b"".join(stream.written) == b"<c0><f3><f4><c1><c2>", "in order, oldest frames dropped"


async def test_one_turn_of_the_loop_is_one_write() -> None:
    stream = SlowStream()
    stream.blocked = False
    outbox = Outbox(stream, max_frames=20)
    for index in range(10):
        outbox.send_frame((str(index).encode(),))
    assert stream.written == [], "nothing is written before the turn ends"
    await asyncio.sleep(0)
    assert stream.written == [b"0123456789"]
    assert outbox.frames_dropped == 0
    assert outbox.pending == 0


async def test_a_consumer_stuck_behind_too_many_messages_is_cut_off() -> None:
    stream = SlowStream()
    cut = []
    outbox = Outbox(stream, max_control=3, on_overflow=lambda: cut.append(True))
    for index in range(5):
        outbox.send((str(index).encode(),))
    assert cut == [True]
    assert outbox.closed


async def test_a_closed_stream_closes_the_outbox() -> None:
    stream = SlowStream()
    stream.closed = True
    outbox = Outbox(stream)
    outbox.send((b"x",))
    await asyncio.sleep(0)
    assert outbox.closed


def test_server_frames_have_the_rfc6455_header() -> None:
    assert b"".join(websocket_frame(b"hi", binary=False)) == b"\x81\x02hi"
    medium = b"".join(websocket_frame(b"x" * 300, binary=True))
    assert medium[:4] == b"\x82\x7e\x01\x2c"
    large = b"".join(websocket_frame(b"x" * 70000, binary=True))
    assert large[:2] == b"\x82\x7f"
    assert int.from_bytes(large[2:10], "big") == 70000


async def test_hub_registry_and_delivery() -> None:
    interest: list[tuple[str, bool]] = []
    hub = Hub(on_interest=lambda stream, wanted: interest.append((stream, wanted)))
    streams = {name: SlowStream() for name in ("phone", "json", "binary")}
    for stream in streams.values():
        stream.blocked = False
    connections = {
        name: Connection("node", "peer", Outbox(stream), max_alerts_per_second=0) for name, stream in streams.items()
    }
    hub.register_producer("s", connections["phone"])
    hub.register_consumer("s", connections["phone"], ["alert"])
    hub.register_consumer("s", connections["json"], ["video-frame", "alert"])
    hub.register_consumer("s", connections["binary"], ["video-frame"], binary=True)
    assert interest == [("s", True)]
    assert hub.get_producer("s") is connections["phone"]
    assert set(hub.get_consumers("s", "video-frame")) == {connections["json"], connections["binary"]}

    frame = parse_binary(encode_binary_frame("s", JPEG, timestamp=1))
    hub.deliver(Envelope.for_frame(frame))
    await asyncio.sleep(0)
    assert streams["binary"].written[0][0] == 0x82
    assert streams["json"].written[0][0] == 0x81
    assert streams["phone"].written == []

    hub.deliver(Envelope.for_message("alert", "s", b'{"type":"alert"}', origin=connections["json"].id))
    await asyncio.sleep(0)
    assert len(streams["phone"].written) == 1
    assert len(streams["json"].written) == 1, "not echoed to its origin"

    assert hub.remove_connection(connections["phone"], ["s"]) == ["s"]
    assert hub.get_producer("s") is None
    hub.remove_connection(connections["json"], ["s"])
    hub.remove_connection(connections["binary"], ["s"])
    assert not hub.has_consumers("s")
    assert interest[-1] == ("s", False)
