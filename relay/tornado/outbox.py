"""The bounded send queue of one connection and the one writer that drains it.

Every message to a client goes through its :class:`Outbox`, as ready-made
WebSocket frame bytes (see :mod:`relay.wire.frames`); a video frame waits as
its :class:`~relay.wire.envelope.Envelope`, whose bytes in the form this
consumer wants are built (once for all consumers) only when it is written, so a
frame dropped before that costs no conversion.  Messages are not written one by
one: the outbox collects what arrives during one turn of the event loop
and hands it all to the transport with a single ``writelines`` at the end of the
turn (on uvloop one ``writev``: scatter-gather, no copy).  A producer's socket
usually holds several frames when it is read, so one system call carries many
frames to each consumer instead of one call per frame per consumer — which is
most of what relaying small frames costs.

One callback per turn of the loop flushes every outbox that has something to
write (:class:`Flusher`), not one callback per outbox: a paced frame for ten
consumers is one scheduled callback, not ten, and a lone message waiting is
written without building a batch.  A video frame for many consumers
(:func:`fan_out`) even waits in the flusher, whole, and a frame alone in its
turn goes straight from there to every consumer that has nothing else waiting
(measured in ``benchmarks/RESULTS.md``, issue 12).

When the socket does not take everything, the transport keeps the rest and the
outbox is *busy* (the transport's write buffer limit is 0, so it tells the
protocol :meth:`~asyncio.BaseProtocol.pause_writing` as soon as anything is left
over); later messages wait here until :meth:`Outbox.resume` is called.  One
writer per connection, never an asyncio Task per message.

Two kinds of message, two rules:

* control messages (alerts, status, replies) are never dropped; a consumer so
  stuck that ``max_control`` of them pile up is cut off (``on_overflow``), and can
  reconnect and resume alerts with ``sinceAlertId``;
* video frames are bounded at ``max_frames`` waiting while the socket is backed
  up: beyond that, the oldest waiting frame is dropped and counted, since a late
  frame is worth less than a new one.  (Within one turn of a socket that keeps
  up, every frame goes out: what one turn can bring is bounded by the read.)

Messages keep their order.  A slow consumer costs the relay at most a few frames
of memory and never slows the producer or the other consumers.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Final, Protocol

from relay.metrics import COUNTERS, DELIVERY_LATENCY
from relay.routing.hub import FrameTargets
from relay.wire.envelope import Envelope
from relay.wire.frames import Wire

MAX_BUFFERS_PER_CALL: Final = 512  # well under IOV_MAX (1024 on Linux)

log = logging.getLogger("relay.connection")

OutboxTargets = tuple[tuple[bool, tuple["Outbox", ...]], ...]
"""The hub's :data:`~relay.routing.hub.FrameTargets` as the flusher sees them: every sink an :class:`Outbox`."""


class Transport(Protocol):
    """The part of :class:`asyncio.WriteTransport` the outbox uses."""

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None: ...


class Flusher:
    """Writes, once at the end of the loop's turn, what every outbox queued in it, and the frames fanned out in it.

    A frame for many consumers (:func:`fan_out`) is not put in their outboxes as
    it arrives: it waits here, whole, as ``(envelope, targets)``.  At the end of
    the turn, a frame that is alone (the paced case: nothing else was queued or
    fanned out in the turn) is written straight to each consumer whose outbox is
    idle, one ``writelines`` each, without entering the outbox at all; a consumer
    with messages waiting, backed up or closed gets it through
    :meth:`Outbox.send_frame`, whose rules (its order, the dropping of old frames,
    nothing after closing) then apply as ever.  Anything else is *settled* first:
    the waiting frames are queued in their outboxes, in order, and the outboxes
    flushed as usual.  To keep every consumer's order, whatever touches an outbox's
    queue during the turn settles first (:meth:`settle`), so a frame fanned out
    before a message stays before it.

    The queued outboxes get a loop of their own too: one holding one message is
    written without a call into it, and consecutive outboxes waiting for the same
    frame in the same form reuse its bytes.  At a paced rate the calls per
    consumer were most of what writing a frame cost in Python
    (``benchmarks/RESULTS.md``, issue 12).
    """

    __slots__ = ("_armed", "_due", "_fanned", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._due: list[Outbox] = []
        self._fanned: list[tuple[Envelope, OutboxTargets]] = []
        self._armed = False  # a call of _run is scheduled

    def add(self, outbox: Outbox) -> None:
        if not self._armed:
            self._armed = True
            self._loop.call_soon(self._run)
        self._due.append(outbox)

    def settle(self) -> None:
        """Queue the frames fanned out so far in their outboxes (:meth:`Outbox.send_frame`, inline), in order."""
        fanned, self._fanned = self._fanned, []
        due = self._due
        for envelope, targets in fanned:
            for binary, outboxes in targets:
                for outbox in outboxes:
                    if outbox.closed:
                        continue
                    outbox._waiting.append((envelope, binary))
                    outbox._frames_waiting += 1
                    if outbox._busy:
                        outbox._trim_frames()
                    elif not outbox._scheduled:
                        outbox._scheduled = True
                        due.append(outbox)  # _run is armed: frames are fanned out

    def _run(self) -> None:
        self._armed = False
        fanned = self._fanned
        if fanned:
            if len(fanned) == 1 and not self._due:
                self._write_alone(*fanned.pop())
                return
            self.settle()
        due, self._due = self._due, []
        envelope: Envelope | None = None  # the frame last written, in the form ``form``, as ``wire``
        form = False
        wire: Wire = ()
        for outbox in due:
            try:
                waiting = outbox._waiting
                if len(waiting) != 1 or outbox._busy:  # (a closed outbox holds nothing)
                    outbox.flush()
                    continue
                # Outbox.flush() for one message, inline.
                outbox._scheduled = False
                item, binary = waiting.pop()
                if binary is None:
                    outbox._transport.writelines(item)  # type: ignore[arg-type]
                    continue
                outbox._frames_waiting -= 1
                if item is not envelope or binary is not form:
                    # Built first: a frame whose bytes could not be built must not be taken for the last one's.
                    wire = item.wire(binary)  # type: ignore[union-attr]
                    envelope, form = item, binary  # type: ignore[assignment]
                outbox._transport.writelines(wire)
                if item.arrived:  # type: ignore[union-attr]
                    DELIVERY_LATENCY.observe(time.perf_counter() - item.arrived)  # type: ignore[union-attr]
            except Exception:  # one connection's failure is not the others'
                log.exception("writing to a connection failed")

    @staticmethod
    def _write_alone(envelope: Envelope, targets: OutboxTargets) -> None:
        """The turn's only frame, and nothing queued: straight to every idle consumer."""
        arrived = envelope.arrived
        timed = arrived > 0.0  # a bool: its test per consumer costs nothing, a float's is a call
        for binary, outboxes in targets:
            wire: Wire | None = None  # built for the group's first idle consumer
            for outbox in outboxes:
                try:
                    if outbox._waiting or outbox._busy or outbox.closed:
                        outbox.send_frame(envelope, binary)  # (flushed in a later turn if it is not backed up)
                        continue
                    if wire is None:
                        wire = envelope.wire(binary)
                    outbox._transport.writelines(wire)
                    if timed:
                        DELIVERY_LATENCY.observe(time.perf_counter() - arrived)
                except Exception:  # one connection's failure is not the others'
                    log.exception("writing to a connection failed")


_flushers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Flusher] = weakref.WeakKeyDictionary()


def flusher() -> Flusher:
    """The running loop's :class:`Flusher`."""
    loop = asyncio.get_running_loop()
    found = _flushers.get(loop)
    if found is None:
        found = _flushers[loop] = Flusher(loop)
    return found


def fan_out(envelope: Envelope, targets: FrameTargets) -> None:
    """Send a video frame to each of its consumers' outboxes, at the end of the turn (see :class:`Flusher`).

    The hub's frame path (``Hub(fan_out=...)``) for outboxes only: one call per
    frame instead of one per consumer.  Every outbox of a process belongs to the
    one loop's flusher, so the first one's is everyone's.  (Typed as the hub's
    sinks, which are outboxes here: not cast, since ``cast`` is a call per frame.)
    """
    found = targets[0][1][0]._flusher  # type: ignore[attr-defined]
    if not found._armed:
        found._armed = True
        found._loop.call_soon(found._run)
    found._fanned.append((envelope, targets))


class Outbox:
    """Send queue of one connection; see the module docstring."""

    __slots__ = (
        "_busy",
        "_flusher",
        "_frames_waiting",
        "_max_control",
        "_max_frames",
        "_on_overflow",
        "_scheduled",
        "_transport",
        "_waiting",
        "closed",
        "frames_dropped",
    )

    def __init__(
        self,
        transport: Transport,
        *,
        max_frames: int = 8,
        max_control: int = 10_000,
        on_overflow: Callable[[], None] | None = None,
    ) -> None:
        self._transport = transport
        self._flusher = flusher()
        # Messages not yet handed to the transport, in order: (Wire, None) for a message
        # that is never dropped, (Envelope, wants binary) for a frame.  A plain list:
        # thousands of idle connections each hold one, and an empty deque costs 760
        # bytes where an empty list costs 56.
        self._waiting: list[tuple[Wire, None] | tuple[Envelope, bool]] = []
        self._frames_waiting = 0
        self._max_frames = max_frames
        self._max_control = max_control
        self._busy = False
        self._scheduled = False
        self.closed = False
        """True once the connection is closing: later messages are ignored.  An attribute, not a property,
        since the session reads it for every message."""
        self._on_overflow = on_overflow
        self.frames_dropped = 0

    @property
    def pending(self) -> int:
        """Messages not yet handed to the transport."""
        if self._flusher._fanned:
            self._flusher.settle()
        return len(self._waiting)

    def send(self, wire: Wire) -> None:
        """Queue a message that must not be dropped (alerts, status, replies)."""
        if self.closed:
            return
        if self._flusher._fanned:  # frames fanned out before it go before it
            self._flusher.settle()
        if len(self._waiting) - self._frames_waiting >= self._max_control:
            overflowed = self._on_overflow
            self.close()
            if overflowed is not None:
                overflowed()
            return
        self._waiting.append((wire, None))
        self._schedule()

    def send_frame(self, envelope: Envelope, binary: bool) -> None:
        """Queue a video frame in the form ``binary`` asks for; while the socket is backed up, drop the oldest."""
        if self.closed:
            return
        if self._flusher._fanned:  # frames fanned out before it go before it
            self._flusher.settle()
        self._waiting.append((envelope, binary))
        self._frames_waiting += 1
        if self._busy:
            self._trim_frames()
        elif not self._scheduled:
            self._scheduled = True
            self._flusher.add(self)

    def close(self) -> None:
        """Forget everything queued; later sends are ignored."""
        self.closed = True
        self._waiting.clear()
        self._frames_waiting = 0
        self._on_overflow = None  # a reference back to the connection: no cycle left to the garbage collector

    def pause(self) -> None:
        """The transport holds bytes the socket did not take: wait for :meth:`resume`."""
        self._busy = True
        self._trim_frames()

    def resume(self) -> None:
        """The transport has written everything: send what waited meanwhile."""
        if self._flusher._fanned:  # frames fanned out while it was backed up give way to each other first
            self._flusher.settle()
        self._busy = False
        self.flush()

    def _trim_frames(self) -> None:
        waiting = self._waiting
        while self._frames_waiting > self._max_frames:
            oldest = 0
            while waiting[oldest][1] is None:  # skip control messages: they are never dropped
                oldest += 1
            del waiting[oldest]
            self._frames_waiting -= 1
            self.frames_dropped += 1
            COUNTERS.frames_dropped += 1

    def _schedule(self) -> None:
        if not self._scheduled and not self._busy:
            self._scheduled = True
            self._flusher.add(self)

    def _next_batch(self) -> list[bytes | memoryview]:
        """The buffers of waiting messages, in order, up to :data:`MAX_BUFFERS_PER_CALL`."""
        waiting = self._waiting
        batch: list[bytes | memoryview] = []
        taken = 0
        for item, binary in waiting:
            if len(batch) >= MAX_BUFFERS_PER_CALL:
                break
            # The marker tells the two kinds apart; a check of the item's type per message would cost more.
            if binary is None:
                batch.extend(item)  # type: ignore[arg-type]
            else:
                batch.extend(item.wire(binary))  # type: ignore[union-attr]
                self._frames_waiting -= 1
                if item.arrived:  # type: ignore[union-attr]
                    DELIVERY_LATENCY.observe(time.perf_counter() - item.arrived)  # type: ignore[union-attr]
            taken += 1
        del waiting[:taken]
        return batch

    def flush(self) -> None:
        """Hand what waits to the transport (the flusher calls it at the end of the turn)."""
        self._scheduled = False
        waiting = self._waiting
        while waiting and not self._busy and not self.closed:
            # The transport calls pause() (through its protocol) from inside
            # writelines when the socket does not take it all.
            if len(waiting) > 1:
                self._transport.writelines(self._next_batch())
                continue
            item, binary = waiting.pop()  # one message, the usual case of a paced stream: no batch to build
            if binary is None:
                self._transport.writelines(item)  # type: ignore[arg-type]
                continue
            self._frames_waiting -= 1
            self._transport.writelines(item.wire(binary))  # type: ignore[union-attr]
            if item.arrived:  # type: ignore[union-attr]
                DELIVERY_LATENCY.observe(time.perf_counter() - item.arrived)  # type: ignore[union-attr]
