"""An asyncio transport over a Tornado ``IOStream``, for WebSocket connections over TLS.

A plain TCP connection leaves Tornado after the upgrade for an asyncio
transport (see :mod:`relay.tornado.handler`).  A TLS connection cannot: its
encryption state lives in the ``ssl`` objects of Tornado's ``SSLIOStream``.  So
it stays on that stream, and :class:`IOStreamTransport` gives the
:class:`~relay.tornado.connection.WebSocketConnection` the same interface it
has on a plain socket, using only the stream's public methods: reads with
``read_bytes(partial=True)``, writes with ``write``, back-pressure with
``writing()``.  It is slower than the plain path (a copy per write, Python per
read), which matters little behind TLS.
"""

from __future__ import annotations

import asyncio
from asyncio import Future
from collections.abc import Iterable
from typing import Any, Final, Protocol

from tornado.iostream import IOStream, StreamClosedError

_READ_CHUNK: Final = 256 * 1024


class Receiver(Protocol):
    """What the transport drives: the parts of :class:`asyncio.Protocol` a connection has."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None: ...

    def data_received(self, data: bytes) -> None: ...

    def connection_lost(self, exc: Exception | None) -> None: ...

    def pause_writing(self) -> None: ...

    def resume_writing(self) -> None: ...


class IOStreamTransport(asyncio.Transport):
    """See the module docstring.  Calls ``protocol.connection_made`` at once."""

    def __init__(self, stream: IOStream, protocol: Receiver) -> None:
        super().__init__()
        self._stream = stream
        self._protocol = protocol
        self._reading = False  # a read_bytes is pending
        self._read_paused = False
        self._write_paused = False
        self._last_write: Future[None] | None = None
        self._closing = False
        self._lost = False
        stream.set_close_callback(self._on_close)
        protocol.connection_made(self)
        self._read()

    # ------------------------------------------------------------------ reading

    def _read(self) -> None:
        if self._reading or self._read_paused or self._stream.closed():
            return
        try:
            future = asyncio.ensure_future(self._stream.read_bytes(_READ_CHUNK, partial=True))  # a Future already
        except StreamClosedError:
            return
        self._reading = True
        future.add_done_callback(self._on_read)

    def _on_read(self, future: Future[bytes]) -> None:
        self._reading = False
        if future.cancelled() or future.exception() is not None:
            return  # the stream closed: its close callback reports it
        self._protocol.data_received(future.result())
        self._read()

    def is_reading(self) -> bool:
        return not self._read_paused

    def pause_reading(self) -> None:
        self._read_paused = True

    def resume_reading(self) -> None:
        self._read_paused = False
        self._read()

    # ------------------------------------------------------------------ writing

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or self._stream.closed():
            return
        try:
            future = self._stream.write(data if isinstance(data, bytes | memoryview) else bytes(data))
        except StreamClosedError:
            return
        self._last_write = future
        if self._stream.writing():
            future.add_done_callback(self._on_written)
            if not self._write_paused:
                self._write_paused = True
                self._protocol.pause_writing()

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        self.write(b"".join(list_of_data))

    def _on_written(self, future: Future[None]) -> None:
        if future is self._last_write and self._write_paused and not self._stream.writing():
            self._write_paused = False
            if not self._closing:
                self._protocol.resume_writing()

    def get_write_buffer_size(self) -> int:
        return 1 if self._stream.writing() else 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Always as ``high=0``: the protocol is paused whenever the socket is backed up."""

    def can_write_eof(self) -> bool:
        return False  # TLS cannot half-close

    def write_eof(self) -> None:
        raise NotImplementedError("a TLS stream cannot half-close")

    # ------------------------------------------------------------------ closing

    def is_closing(self) -> bool:
        return self._closing or self._stream.closed()

    def close(self) -> None:
        """Close once what was written has gone out."""
        self._closing = True
        last = self._last_write
        if last is not None and not last.done():
            last.add_done_callback(lambda _written: self._stream.close())
        else:
            self._stream.close()

    def abort(self) -> None:
        self._closing = True
        self._stream.close()

    def _on_close(self) -> None:
        if not self._lost:
            self._lost = True
            error = self._stream.error
            self._protocol.connection_lost(error if isinstance(error, Exception) else None)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            try:
                return self._stream.socket.getpeername()
            except OSError:
                return default
        return default
