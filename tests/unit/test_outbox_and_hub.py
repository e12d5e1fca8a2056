"""The outbox's queue rules and the hub's registry, without sockets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

from relay.metrics import COUNTERS, DELIVERY_LATENCY
from relay.routing.connection import Connection
from relay.routing.hub import Hub
from relay.tornado.outbox import Outbox, fan_out
from relay.wire import encode_binary_frame, parse_binary
from relay.wire.envelope import Envelope, frame_envelope
from relay.wire.frames import websocket_frame
from tests.support import JPEG


class SlowTransport:
    """A transport whose socket takes nothing until the test says so, as asyncio's would tell the outbox."""

    def __init__(self) -> None:
        self.written: list[bytes] = []  # what reached the socket
        self.buffered: list[bytes] = []  # what the transport holds for it
        self.blocked = True
        self.outbox: Outbox | None = None

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        data = b"".join(list_of_data)
        if self.blocked:
            self.buffered.append(data)
            assert self.outbox is not None
            self.outbox.pause()  # asyncio calls the protocol's pause_writing from inside write
        else:
            self.written.append(data)

    def flush(self) -> None:
        self.blocked = False
        self.written.extend(self.buffered)
        self.buffered.clear()
        assert self.outbox is not None
        self.outbox.resume()


class Frame:
    """Stands in for a frame's envelope: its bytes are what the test says."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.built = 0
        self.arrived = 0.0  # not one of the frames whose latency is measured

    def wire(self, binary: bool) -> tuple[bytes, ...]:
        self.built += 1
        return (self.data,)


def outbox_on(transport: SlowTransport, **options: Any) -> Outbox:
    outbox = transport.outbox = Outbox(transport, **options)
    return outbox


async def test_frames_are_dropped_oldest_first_and_control_never() -> None:
    transport = SlowTransport()
    outbox = outbox_on(transport, max_frames=2)
    outbox.send((b"<c0>",))
    await asyncio.sleep(0)  # the turn ends: c0 is handed to the (blocked) socket
    for index in range(5):
        outbox.send_frame(Frame(f"<f{index}>".encode()), False)
    outbox.send((b"<c1>",))
    outbox.send((b"<c2>",))
    assert outbox.frames_dropped == 3
    transport.flush()
    assert b"".join(transport.written) == b"<c0><f3><f4><c1><c2>", "in order, oldest frames dropped"


async def test_one_turn_of_the_loop_is_one_write() -> None:
    transport = SlowTransport()
    transport.blocked = False
    outbox = outbox_on(transport, max_frames=20)
    for index in range(10):
        outbox.send_frame(Frame(str(index).encode()), False)
    assert transport.written == [], "nothing is written before the turn ends"
    await asyncio.sleep(0)
    assert transport.written == [b"0123456789"]
    assert outbox.frames_dropped == 0
    assert outbox.pending == 0


async def test_a_frame_is_built_only_if_it_is_written() -> None:
    transport = SlowTransport()
    outbox = outbox_on(transport, max_frames=1)
    outbox.send((b"<c0>",))
    await asyncio.sleep(0)  # c0 goes out, the socket backs up
    frames = [Frame(f"<f{index}>".encode()) for index in range(3)]
    for frame in frames:
        outbox.send_frame(frame, True)
    assert outbox.frames_dropped == 2, "the second and third push an older frame out"
    transport.flush()
    assert [frame.built for frame in frames] == [0, 0, 1]


async def test_a_consumer_stuck_behind_too_many_messages_is_cut_off() -> None:
    cut = []
    outbox = outbox_on(SlowTransport(), max_control=3, on_overflow=lambda: cut.append(True))
    for index in range(5):
        outbox.send((str(index).encode(),))
    assert cut == [True]
    assert outbox.closed


async def test_nothing_is_written_once_the_outbox_is_closed() -> None:
    transport = SlowTransport()
    transport.blocked = False
    outbox = outbox_on(transport)
    outbox.send((b"x",))
    outbox.close()
    outbox.send((b"y",))
    await asyncio.sleep(0)
    assert transport.written == []


def test_server_frames_have_the_rfc6455_header() -> None:
    assert b"".join(websocket_frame(b"hi", binary=False)) == b"\x81\x02hi"
    medium = b"".join(websocket_frame(b"x" * 300, binary=True))
    assert medium[:4] == b"\x82\x7e\x01\x2c"
    large = b"".join(websocket_frame(b"x" * 70000, binary=True))
    assert large[:2] == b"\x82\x7f"
    assert int.from_bytes(large[2:10], "big") == 70000


async def test_hub_registry_and_delivery() -> None:
    interest: list[tuple[str, bool, bool]] = []
    hub = Hub(on_interest=lambda stream, frames, wanted: interest.append((stream, frames, wanted)))
    streams = {name: SlowTransport() for name in ("phone", "json", "binary")}
    for stream in streams.values():
        stream.blocked = False
    connections = {
        name: Connection("node", "peer", outbox_on(stream), max_alerts_per_second=0) for name, stream in streams.items()
    }
    hub.register_producer("s", connections["phone"])
    hub.register_consumer("s", connections["phone"], ["alert"])
    hub.register_consumer("s", connections["json"], ["video-frame", "alert"])
    hub.register_consumer("s", connections["binary"], ["video-frame"], binary=True)
    assert interest == [("s", False, True), ("s", True, True)], "the phone wants alerts; the others frames too"
    assert hub.get_producer("s") is connections["phone"]
    assert set(hub.get_consumers("s", "video-frame")) == {connections["json"], connections["binary"]}

    frame = parse_binary(encode_binary_frame("s", JPEG, timestamp=1))
    hub.deliver(frame_envelope(frame))
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
    assert interest[2:] == [("s", False, False), ("s", True, False)], "alerts left with json, frames with binary"


async def test_the_outboxes_of_one_turn_are_flushed_together_and_one_failing_write_stops_no_other() -> None:
    class BrokenTransport(SlowTransport):
        def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
            raise RuntimeError("the handler is closed")

    broken, working = BrokenTransport(), SlowTransport()
    working.blocked = False
    first, second = outbox_on(broken), outbox_on(working)
    first.send((b"<lost>",))
    second.send_frame(Frame(b"<f0>"), True)
    second.send((b"<c0>",))
    await asyncio.sleep(0)  # the turn ends: one callback flushes both
    assert working.written == [b"<f0><c0>"]


class TwoForms(Frame):
    """A frame's envelope whose bytes differ per form, counting how often each form is asked for."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.asked = {True: 0, False: 0}

    def wire(self, binary: bool) -> tuple[bytes, ...]:
        self.asked[binary] += 1
        return ((b"B" if binary else b"T") + self.data,)


def frame_hub(
    names: Iterable[str], binary: Iterable[str] = ()
) -> tuple[Hub, dict[str, SlowTransport], dict[str, Connection]]:
    """A hub on the relay's own fan-out, each named consumer of stream ``s``'s frames on a socket that keeps up."""
    hub = Hub(fan_out=fan_out)
    transports = {name: SlowTransport() for name in names}
    connections = {}
    for name, transport in transports.items():
        transport.blocked = False
        connections[name] = Connection("node", "peer", outbox_on(transport, max_frames=1), max_alerts_per_second=0)
        hub.register_consumer("s", connections[name], ["video-frame", "alert"], binary=name in binary)
    return hub, transports, connections


def hub_frame(envelope: Frame) -> Envelope:
    """``envelope`` as the hub sees a frame's (a frame aboard, of stream ``s``)."""
    envelope.frame = parse_binary(encode_binary_frame("s", JPEG, timestamp=1))  # type: ignore[attr-defined]
    envelope.stream_id = "s"  # type: ignore[attr-defined]
    return envelope  # type: ignore[return-value]


async def test_the_fan_out_keeps_each_consumers_order_form_and_drop_policy() -> None:
    hub, transports, connections = frame_hub(["a", "slow", "closed", "text"], binary=["a", "slow", "closed"])
    transports["slow"].blocked = True
    connections["slow"].outbox.send((b"<c0>",))
    await asyncio.sleep(0)  # c0 fills the slow one's socket: it is busy from now on
    connections["closed"].outbox.close()
    delivered = COUNTERS.frames_delivered
    frames = [TwoForms(f"<f{index}>".encode()) for index in range(3)]
    for frame in frames:
        hub.deliver(hub_frame(frame))
    hub.deliver(Envelope.for_message("alert", "s", b"<alert>"))
    assert COUNTERS.frames_delivered == delivered + 12, "counted per target, as queued"
    assert transports["a"].written == [], "nothing is written before the turn ends"
    await asyncio.sleep(0)
    assert transports["a"].written == [b"B<f0>B<f1>B<f2>\x81\x07<alert>"], "one write, in order, after the frames"
    assert transports["text"].written == [b"T<f0>T<f1>T<f2>\x81\x07<alert>"]
    assert transports["closed"].written == []
    assert connections["slow"].outbox.frames_dropped == 2, "a busy consumer keeps its newest frame only"
    transports["slow"].flush()
    assert transports["slow"].written == [b"<c0>", b"B<f2>\x81\x07<alert>"]


async def test_a_lone_frame_is_built_once_per_form_for_all_its_consumers() -> None:
    hub, transports, _ = frame_hub(["b1", "t1", "b2", "b3"], binary=["b1", "b2", "b3"])
    frame = TwoForms(b"<f>")
    hub.deliver(hub_frame(frame))
    await asyncio.sleep(0)
    assert {name: transport.written for name, transport in transports.items()} == {
        "b1": [b"B<f>"],
        "t1": [b"T<f>"],
        "b2": [b"B<f>"],
        "b3": [b"B<f>"],
    }
    assert frame.asked == {True: 1, False: 1}, "asked once per form, however the forms are interleaved"


async def test_frame_targets_follow_the_registry() -> None:
    hub, transports, connections = frame_hub(["a", "b"])
    hub.register_consumer("s", connections["a"], ["alert"])  # no frames any more
    hub.register_consumer("s", connections["b"], ["video-frame"], binary=True)  # now binary
    hub.deliver(hub_frame(TwoForms(b"<f0>")))
    await asyncio.sleep(0)
    assert transports["a"].written == []
    assert transports["b"].written == [b"B<f0>"]
    hub.unregister("s", connections["b"])
    hub.deliver(hub_frame(TwoForms(b"<f1>")))
    await asyncio.sleep(0)
    assert transports["b"].written == [b"B<f0>"]


async def test_a_lone_frame_goes_straight_to_idle_consumers_and_by_the_queue_rules_to_the_others() -> None:
    hub, transports, connections = frame_hub(["idle", "slow", "closed"], binary=["idle", "slow", "closed"])
    transports["slow"].blocked = True
    connections["slow"].outbox.send((b"<c0>",))
    connections["slow"].outbox.send_frame(TwoForms(b"<old>"), True)
    await asyncio.sleep(0)  # c0 and the old frame fill the slow one's socket
    connections["slow"].outbox.send_frame(TwoForms(b"<waiting>"), True)
    connections["closed"].outbox.close()
    latencies = DELIVERY_LATENCY.count
    frame = TwoForms(b"<f>")
    frame.arrived = time.perf_counter()  # one of the frames whose latency is measured
    hub.deliver(hub_frame(frame))
    assert transports["idle"].written == [], "nothing is written before the turn ends"
    await asyncio.sleep(0)
    assert transports["idle"].written == [b"B<f>"]
    assert transports["closed"].written == []
    assert connections["slow"].outbox.frames_dropped == 1, "the frame waiting gave way to the new one"
    assert DELIVERY_LATENCY.count == latencies + 1, "timed per consumer it is written to"
    transports["slow"].flush()
    assert transports["slow"].written == [b"<c0>B<old>", b"B<f>"]
    assert DELIVERY_LATENCY.count == latencies + 2


async def test_what_is_queued_after_a_frame_in_its_turn_goes_after_it() -> None:
    hub, transports, connections = frame_hub(["a", "b"], binary=["a", "b"])
    hub.deliver(hub_frame(TwoForms(b"<f>")))
    assert connections["a"].outbox.pending == 1, "a frame fanned out is pending in each outbox"
    connections["b"].outbox.send((b"<after>",))
    await asyncio.sleep(0)
    assert transports["a"].written == [b"B<f>"]
    assert transports["b"].written == [b"B<f><after>"]


class Unbuildable(Frame):
    """A frame's envelope whose bytes cannot be built (a conversion that fails)."""

    def wire(self, binary: bool) -> tuple[bytes, ...]:
        self.built += 1
        raise MemoryError("no room for the converted frame")


async def test_a_frame_that_cannot_be_built_is_not_replaced_by_the_last_one_written() -> None:
    """The flusher reuses the bytes of the frame it wrote last for the next outbox waiting for the same
    frame: one that failed to build must not leave the previous (another stream's) bytes to be reused."""
    transports = {name: SlowTransport() for name in ("a", "b", "c")}
    outboxes = {}
    for name, transport in transports.items():
        transport.blocked = False
        outboxes[name] = outbox_on(transport)
    broken = Unbuildable(b"<s2>")
    outboxes["a"].send_frame(Frame(b"<s1>"), True)
    outboxes["b"].send_frame(broken, True)  # type: ignore[arg-type]
    outboxes["c"].send_frame(broken, True)  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert transports["a"].written == [b"<s1>"]
    assert transports["b"].written == []
    assert transports["c"].written == [], "c waits for s2's frame: it must never get s1's bytes instead"


class BrokenTransport(SlowTransport):
    """A transport whose connection is gone while its outbox is not closed yet (uvloop raises then)."""

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        raise RuntimeError("unable to perform operation: the handler is closed")


async def test_what_happens_to_consumers_between_a_fan_out_and_the_end_of_its_turn() -> None:
    """Closed after the frame was fanned out: nothing; backed up: the queue's bound; unsubscribed: the frame
    fanned out before; a broken socket: the others get theirs all the same."""
    hub, transports, connections = frame_hub(["closes", "backs_up", "leaves", "ok"], binary=["ok"])
    broken = BrokenTransport()
    connections["broken"] = Connection("node", "peer", outbox_on(broken), max_alerts_per_second=0)
    hub.register_consumer("s", connections["broken"], ["video-frame"], binary=True)
    delivered, dropped = COUNTERS.frames_delivered, COUNTERS.frames_dropped
    hub.deliver(hub_frame(TwoForms(b"<f0>")))  # alone in its turn, so far
    connections["closes"].outbox.close()
    hub.unregister("s", connections["leaves"])
    transports["backs_up"].blocked = True
    connections["backs_up"].outbox.pause()  # (as a resume's write that the socket did not take would)
    await asyncio.sleep(0)
    assert transports["closes"].written == []
    assert transports["leaves"].written == [b"T<f0>"], "fanned out while it was a consumer"
    assert transports["ok"].written == [b"B<f0>"]
    assert connections["backs_up"].outbox.pending == 1
    for index in (1, 2, 3):
        hub.deliver(hub_frame(TwoForms(f"<f{index}>".encode())))
    hub.deliver(Envelope.for_message("alert", "s", b"<a>"))
    await asyncio.sleep(0)
    assert transports["ok"].written == [b"B<f0>", b"B<f1>B<f2>B<f3>\x81\x03<a>"]
    assert transports["leaves"].written == [b"T<f0>"]
    assert transports["closes"].written == []
    assert connections["backs_up"].outbox.frames_dropped == 3, "max_frames=1: the newest frame only"
    transports["backs_up"].flush()
    assert transports["backs_up"].written == [b"T<f3>\x81\x03<a>"]
    assert COUNTERS.frames_delivered - delivered == 5 + 4 * 3, "counted as handed to the targets of the time"
    assert COUNTERS.frames_dropped - dropped == 3


async def test_frames_fanned_out_while_a_consumer_was_backed_up_are_trimmed_when_its_socket_drains() -> None:
    """The socket can drain (resume) in the same turn as frames were fanned out to it, before the flusher
    runs: those frames came while it was backed up, so only the newest ``max_frames`` of them go out, as
    when they were queued one by one -- not all of them, oldest first."""
    hub, transports, connections = frame_hub(["slow"], binary=["slow"])  # max_frames=1
    transports["slow"].blocked = True
    connections["slow"].outbox.send((b"<c0>",))
    await asyncio.sleep(0)  # c0 fills its socket: it is backed up from now on
    dropped = COUNTERS.frames_dropped
    for index in range(3):
        hub.deliver(hub_frame(TwoForms(f"<f{index}>".encode())))
    transports["slow"].flush()  # the socket drains in this same turn
    await asyncio.sleep(0)
    assert transports["slow"].written == [b"<c0>", b"B<f2>"], "the newest frame only"
    assert connections["slow"].outbox.frames_dropped == 2
    assert COUNTERS.frames_dropped == dropped + 2
