"""The bounded send queue of one connection and the one writer that drains it.

Every message to a client goes through its :class:`Outbox`, as ready-made
WebSocket frame bytes (see :mod:`relay.envelope`).  Messages are not written one
by one: the outbox collects what arrives during one turn of the event loop and
writes it all with a single ``sendmsg`` (scatter-gather, no copy) at the end of
the turn.  A producer's socket usually holds several frames when it is read, so
one system call carries many frames to each consumer instead of one call per
frame per consumer — which is most of what relaying small frames costs.

When the socket does not take everything, the rest goes to Tornado's
``IOStream.write`` and the outbox is *busy*: later messages wait here until a
done-callback on that write drains them.  One writer per connection, never an
asyncio Task per message.

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
from asyncio import Future
from collections.abc import Callable
from typing import Final, Protocol

from tornado.iostream import IOStream, SSLIOStream, StreamClosedError

from relay.envelope import Wire
from relay.metrics import COUNTERS

MAX_BUFFERS_PER_CALL: Final = 512  # well under IOV_MAX (1024 on Linux)


class WritableStream(Protocol):
    """The part of :class:`tornado.iostream.IOStream` the outbox uses."""

    def write(self, data: bytes | memoryview) -> Future[None]: ...

    def writing(self) -> bool: ...

    def write_to_fd(self, data: memoryview) -> int: ...


class Outbox:
    """Send queue of one connection; see the module docstring."""

    __slots__ = (
        "_busy",
        "_closed",
        "_frames_waiting",
        "_loop",
        "_max_control",
        "_max_frames",
        "_on_overflow",
        "_scheduled",
        "_sendmsg",
        "_stream",
        "_waiting",
        "frames_dropped",
    )

    def __init__(
        self,
        stream: WritableStream,
        *,
        max_frames: int = 8,
        max_control: int = 10_000,
        on_overflow: Callable[[], None] | None = None,
    ) -> None:
        self._stream = stream
        # Scatter-gather straight to the socket for plain TCP; TLS goes through the stream.
        plain = isinstance(stream, IOStream) and not isinstance(stream, SSLIOStream)
        self._sendmsg = stream.socket.sendmsg if isinstance(stream, IOStream) and plain else None
        self._loop = asyncio.get_running_loop()
        # Messages not yet handed to the socket, in order, each marked "is a frame".
        # A plain list: thousands of idle connections each hold one, and an empty
        # deque costs 760 bytes where an empty list costs 56.
        self._waiting: list[tuple[Wire, bool]] = []
        self._frames_waiting = 0
        self._max_frames = max_frames
        self._max_control = max_control
        self._busy = False
        self._scheduled = False
        self._closed = False
        self._on_overflow = on_overflow
        self.frames_dropped = 0

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pending(self) -> int:
        """Messages not yet handed to the socket."""
        return len(self._waiting)

    def send(self, wire: Wire) -> None:
        """Queue a message that must not be dropped (alerts, status, replies)."""
        if self._closed:
            return
        if len(self._waiting) - self._frames_waiting >= self._max_control:
            self.close()
            if self._on_overflow is not None:
                self._on_overflow()
            return
        self._waiting.append((wire, False))
        self._schedule()

    def send_frame(self, wire: Wire) -> None:
        """Queue a video frame; while the socket is backed up, drop the oldest beyond the bound."""
        if self._closed:
            return
        self._waiting.append((wire, True))
        self._frames_waiting += 1
        if self._busy:
            self._trim_frames()
        else:
            self._schedule()

    def close(self) -> None:
        """Forget everything queued; later sends are ignored."""
        self._closed = True
        self._waiting.clear()
        self._frames_waiting = 0

    def _trim_frames(self) -> None:
        waiting = self._waiting
        while self._frames_waiting > self._max_frames:
            oldest = 0
            while not waiting[oldest][1]:  # skip control messages: they are never dropped
                oldest += 1
            del waiting[oldest]
            self._frames_waiting -= 1
            self.frames_dropped += 1
            COUNTERS.frames_dropped += 1

    def _schedule(self) -> None:
        if not self._scheduled and not self._busy:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def _next_batch(self) -> list[bytes | memoryview]:
        """The buffers of waiting messages, in order, up to :data:`MAX_BUFFERS_PER_CALL`."""
        waiting = self._waiting
        batch: list[bytes | memoryview] = []
        taken = 0
        for wire, is_frame in waiting:
            if len(batch) >= MAX_BUFFERS_PER_CALL:
                break
            batch.extend(wire)
            self._frames_waiting -= is_frame
            taken += 1
        del waiting[:taken]
        return batch

    def _flush(self) -> None:
        self._scheduled = False
        while not self._busy and not self._closed and self._waiting:
            self._write(self._next_batch())

    def _write(self, batch: list[bytes | memoryview]) -> None:
        stream = self._stream
        sent = 0
        if not stream.writing():
            # Nothing of Tornado's is waiting to go out (a ping, a close frame), so the
            # bytes may go straight to the socket.  Whatever it does not take goes
            # through IOStream.write, which then owns ordering, partial writes and errors.
            try:
                if self._sendmsg is not None:
                    sent = self._sendmsg(batch)
                else:
                    sent = stream.write_to_fd(memoryview(batch[0] if len(batch) == 1 else b"".join(batch)))
            except OSError:
                sent = 0
        rest = _after(batch, sent)
        if not rest:
            return
        try:
            future = stream.write(rest)
        except StreamClosedError:
            self.close()
            return
        if not future.done():
            self._busy = True
            self._trim_frames()
            future.add_done_callback(self._on_written)

    def _on_written(self, future: Future[None]) -> None:
        self._busy = False
        if future.cancelled() or future.exception() is not None:
            self.close()
            return
        self._flush()


def _after(batch: list[bytes | memoryview], sent: int) -> bytes:
    """What is left of ``batch`` once its first ``sent`` bytes are written."""
    for index, buffer in enumerate(batch):
        if sent < len(buffer):
            return b"".join([buffer[sent:], *batch[index + 1 :]])
        sent -= len(buffer)
    return b""
