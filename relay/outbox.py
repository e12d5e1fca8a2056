"""The bounded send queue of one connection and the one writer that drains it.

Every message to a client goes through its :class:`Outbox`, as ready-made
WebSocket frame bytes (see :mod:`relay.envelope`).  While the socket takes bytes
as fast as they come, each message is written straight away, synchronously, with
no task and no queue.  When the socket falls behind (a write did not complete at
once), later messages wait in the outbox and a single done-callback on the
pending write drains them in order when it completes: one writer per
connection, never an asyncio Task per message.

Two queues, because the two kinds of message have different rules:

* control messages (alerts, status, replies) are never dropped; a consumer so
  stuck that ``max_control`` of them pile up is cut off (``on_overflow``), and can
  reconnect and resume alerts with ``sinceAlertId``;
* video frames are bounded at ``max_frames``: when full, the oldest queued frame
  is dropped and counted, since a late frame is worth less than a new one.

A slow consumer therefore costs the relay at most a few frames of memory and
never slows the producer or the other consumers.
"""

from __future__ import annotations

from asyncio import Future
from collections import deque
from collections.abc import Callable
from typing import Protocol

from tornado.iostream import StreamClosedError


class WritableStream(Protocol):
    """The part of :class:`tornado.iostream.IOStream` the outbox uses."""

    def write(self, data: bytes) -> Future[None]: ...


class Outbox:
    """Send queue of one connection; see the module docstring."""

    __slots__ = (
        "_busy",
        "_closed",
        "_control",
        "_frames",
        "_max_control",
        "_max_frames",
        "_on_overflow",
        "_stream",
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
        self._control: deque[bytes] = deque()
        self._frames: deque[bytes] = deque()
        self._max_frames = max_frames
        self._max_control = max_control
        self._busy = False
        self._closed = False
        self._on_overflow = on_overflow
        self.frames_dropped = 0

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pending(self) -> int:
        """Messages waiting behind the write in progress."""
        return len(self._control) + len(self._frames)

    def send(self, wire: bytes) -> None:
        """Queue a message that must not be dropped (alerts, status, replies)."""
        if self._closed:
            return
        if self._busy:
            if len(self._control) >= self._max_control:
                self.close()
                if self._on_overflow is not None:
                    self._on_overflow()
                return
            self._control.append(wire)
        else:
            self._write(wire)

    def send_frame(self, wire: bytes) -> None:
        """Queue a video frame, dropping the oldest queued frame if the queue is full."""
        if self._closed:
            return
        if self._busy:
            frames = self._frames
            if len(frames) >= self._max_frames:
                frames.popleft()
                self.frames_dropped += 1
            frames.append(wire)
        else:
            self._write(wire)

    def close(self) -> None:
        """Forget everything queued; later sends are ignored."""
        self._closed = True
        self._control.clear()
        self._frames.clear()

    def _write(self, wire: bytes) -> None:
        try:
            future = self._stream.write(wire)
        except StreamClosedError:
            self.close()
            return
        if not future.done():
            self._busy = True
            future.add_done_callback(self._on_written)

    def _on_written(self, future: Future[None]) -> None:
        self._busy = False
        if future.cancelled() or future.exception() is not None:
            self.close()
            return
        control, frames = self._control, self._frames
        while not self._busy and not self._closed and (control or frames):
            self._write(control.popleft() if control else frames.popleft())
