"""One WebSocket connection after the upgrade: bytes in, messages to the session, frames out.

:class:`WebSocketConnection` is an :class:`asyncio.Protocol` on the socket that
:mod:`relay.tornado.handler` took over from Tornado once the upgrade was agreed.
RFC 6455 is the ``websockets`` library's: its sans-I/O
:class:`websockets.protocol.Protocol` parses frames (masking, lengths, reserved
bits, opcodes, control frames, fragment order, the message size limit), answers
pings, and runs the closing handshake with valid codes only: a bad frame fails
the connection with 1002, an oversized message with 1009, a bad close frame
with 1002 or 1007, and 1005, 1006 and 1015 never go on the wire.  The frames
nearly every client sends, whole data frames, pings and pongs, are read here
without it (:mod:`relay.tornado.framing`: one copy per payload, no per-frame
objects), and the library's protocol is only made when something else comes or
the connection closes; idle connections never have one.  What it leaves to its
caller is done here: assembling fragmented messages, and checking that
text is UTF-8 (close 1007, for a fragmented message as soon as the bad bytes
arrive; for a whole one when its JSON does not parse, since orjson checks UTF-8
as it parses and valid messages then pay nothing for the check).

Each complete message goes to the connection's
:class:`~relay.routing.session.Session`.  When one needs the database (it returns
an awaitable), reading pauses until it is done, so a client's messages take
effect in order; frames do not wait.  What the relay sends goes through the
connection's :class:`~relay.tornado.outbox.Outbox` straight to the transport as
ready-made frames; only control frames (pong, close) come from the library.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
from collections.abc import Awaitable, MutableSet
from typing import Final, Protocol, cast

from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol as WebSocketProtocol
from websockets.protocol import Side, State

from relay.config import Settings
from relay.identity.authenticators import Authenticators, Identified
from relay.metrics import COUNTERS
from relay.ratelimit import Quota
from relay.routing.connection import Connection
from relay.routing.router import Router
from relay.routing.session import Session
from relay.tornado.framing import (
    MAX_CONTROL_PAYLOAD,
    PLAIN_BINARY,
    PLAIN_PING,
    PLAIN_PONG,
    PLAIN_TEXT,
    frame_header,
    unmask,
)
from relay.tornado.outbox import Outbox
from relay.wire import CloseCode, NotUtf8

log = logging.getLogger("relay.connection")

CLOSE_TIMEOUT: Final = 5.0
"""Seconds to wait for the peer's part of a closing handshake before cutting the TCP connection."""

READ_BYTES: Final = 256 * 1024
"""The most one read takes from a socket: a whole camera frame, usually."""

FLOOD_READ_BYTES: Final = 8 * 1024
"""The most one read takes while a client has more waiting than the last read took.

A client that always has more to send (a producer at the maximum rate) is read
a little per turn of the loop instead of a quarter of a megabyte: the turns
then also write to its consumers, so the relay does not spend its time reading
frames that it will drop for want of time to send them (measured in
``benchmarks/RESULTS.md``: 8 KB is where the maximum-rate workloads stop
improving; paced clients, whose reads never fill the buffer, keep reading
whole frames).
"""

UNAUTHENTICATED_MESSAGE_BYTES: Final = 1024 * 1024
"""The largest message a client may send before it is authenticated.  An ``auth`` is under
1 KB, but a phone may send its first frames right behind its ``auth`` and ``register``
without waiting for the answers (they are handled in order), and a phone JPEG is well
under 1 MiB.  A peer that never authenticates holds at most this much of the relay's
memory, and ``max_unauthenticated`` of them at most that many times it."""

_receive_buffer = bytearray(READ_BYTES)
_receive_view = memoryview(_receive_buffer)
"""Where every connection of the process reads into: one buffer, because the
loop reads one socket at a time and the bytes are handed to the connection's
protocol (which keeps what it needs) before the next read."""
_flood_view = _receive_view[:FLOOD_READ_BYTES]
"""Its first :data:`FLOOD_READ_BYTES`, made once rather than sliced per read."""

_WEBSOCKET_LOG = logging.getLogger("relay.websockets")
_WEBSOCKET_LOG.setLevel(logging.WARNING)  # the library logs every connection's end at INFO; we log our own

_TEXT, _BINARY, _CONT, _PONG = Opcode.TEXT, Opcode.BINARY, Opcode.CONT, Opcode.PONG
_OPEN = State.OPEN
_PLAIN = (PLAIN_BINARY, PLAIN_TEXT)
_PLAIN_CONTROL = (PLAIN_PING, PLAIN_PONG)
_PING = bytes((0x89, 0))
"""The heartbeat's ping: a final, empty, unmasked ping frame."""


def _release(websocket: WebSocketProtocol) -> None:
    """Let go of what ties a closed protocol to itself, so that it is freed without the cycle collector.

    The library's parser is a generator whose frame holds the protocol, and the exception that
    ended it (at the end of the stream, always) holds that frame in its traceback: a cycle per
    closed connection, which made full collections long in connection floods (issue 9).
    Both attributes are the library's (pinned in tests/unit/test_dependency_seams.py).
    """
    websocket.parser.close()
    websocket.parser_exc = None


_utf8_decoder = codecs.getincrementaldecoder("utf-8")


class SocketContext(Protocol):
    """What a WebSocket connection needs of its relay node."""

    @property
    def node_id(self) -> str: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def router(self) -> Router: ...

    @property
    def authenticators(self) -> Authenticators: ...

    @property
    def connections(self) -> MutableSet[WebSocketConnection]: ...

    @property
    def waiting(self) -> Quota:
        """Connections upgraded without credentials that have not authenticated yet, per address and in all."""


class Connections(set["WebSocketConnection"]):
    """A node's open connections (they add and remove themselves)."""

    def __init__(self) -> None:
        super().__init__()
        self._emptied: asyncio.Event | None = None

    def discard(self, connection: object) -> None:
        super().discard(connection)
        if not self and self._emptied is not None:
            self._emptied.set()

    async def all_gone(self, within: float) -> None:
        """Wait until no connection is left, at most ``within`` seconds."""
        if not self:
            return
        self._emptied = asyncio.Event()
        try:
            async with asyncio.timeout(within):
                await self._emptied.wait()
        except TimeoutError:
            log.warning("%d connections still open after %.0f s", len(self), within)
        finally:
            self._emptied = None


class WebSocketConnection(asyncio.BufferedProtocol):
    """See the module docstring.  Built by the upgrade handler, one per client."""

    __slots__ = (
        "_backlog",
        "_close_timer",
        "_fragments",
        "_handling",
        "_library_owes",
        "_max_size",
        "_node",
        "_opening",
        "_partial",
        "_plain",
        "_read_view",
        "_reading_stopped",
        "_text_decoder",
        "_transport",
        "_waiting_as",
        "_websocket",
        "connection",
        "outbox",
        "session",
    )

    connection: Connection
    outbox: Outbox
    session: Session

    def __init__(
        self,
        node: SocketContext,
        *,
        peer: str,
        handshake: bytes,
        identity: Identified | None,
        refused: bool,
        received: bytes = b"",
        waiting_as: str | None = None,
    ) -> None:
        self._node = node
        self._waiting_as = waiting_as  # the address it holds a place of node.waiting for, until it authenticates
        max_size = node.settings.max_message_bytes or None
        if identity is None and max_size is not None:
            max_size = min(max_size, UNAUTHENTICATED_MESSAGE_BYTES)
        elif identity is None:
            max_size = UNAUTHENTICATED_MESSAGE_BYTES
        self._max_size = max_size
        # Made when a frame that is not plain arrives or the connection closes: most connections never
        # need it, and it is a kilobyte each (a parser generator, a buffer, a UUID).
        self._websocket: WebSocketProtocol | None = None
        # What connection_made needs once, then forgets: the 101 response to write, who the
        # upgrade said the client is, and any bytes the client sent before it got the 101.
        self._opening: tuple[str, bytes, Identified | None, bool, bytes] | None = (
            peer,
            handshake,
            identity,
            refused,
            received,
        )
        self._transport: asyncio.Transport | None = None
        self._backlog: bytearray | None = None  # bytes read after a message that waits for the database
        self._partial: bytearray | None = None  # the start of a frame whose end has not arrived
        self._library_owes = 0  # bytes of a frame the library was given the start of, still to give it
        self._plain = True  # frames are read here (see relay.tornado.framing) until the connection closes
        self._handling: asyncio.Task[None] | None = None  # the message it waits for
        self._fragments: bytearray | None = None  # a fragmented message being put together
        self._text_decoder: codecs.IncrementalDecoder | None = None  # checks a fragmented text as it comes
        self._close_timer: asyncio.TimerHandle | None = None
        self._read_view = _receive_view  # what the next read may fill: all of it, or _flood_view
        self._reading_stopped = False

    @property
    def client_type(self) -> str:
        """What the client said it is (``mobile``, ``dashboard``, ``ml-service`` …), for the metrics."""
        if self._opening is not None or self.connection.user_id is None:
            return "unauthenticated"
        return self.connection.client_type or "authenticated"

    @property
    def transport(self) -> asyncio.Transport | None:
        """The connection's transport, once it is made."""
        return self._transport

    # ------------------------------------------------------------------ asyncio's side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's are Transports, but not subclasses
        assert self._opening is not None
        peer, handshake, identity, refused, received = self._opening
        self._opening = None
        self._transport = transport
        node = self._node
        settings = node.settings
        transport.set_write_buffer_limits(high=0)  # pause_writing as soon as the socket is backed up
        transport.write(handshake)
        self.outbox = Outbox(
            transport,
            max_frames=settings.max_queued_frames,
            max_control=settings.max_queued_messages,
            on_overflow=self._too_slow,
        )
        self.connection = Connection(
            node.node_id, peer, self.outbox, max_alerts_per_second=settings.max_alerts_per_second
        )
        self.session = Session(self.connection, node.router, node.authenticators, self)
        node.connections.add(self)
        COUNTERS.connections_opened += 1
        self.session.begin(identity, refused=refused, auth_timeout=settings.auth_timeout)
        if received:
            self.data_received(received)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._read_view

    def buffer_updated(self, nbytes: int) -> None:
        self._read_view = _flood_view if nbytes == len(self._read_view) else _receive_view
        if self._backlog is not None:  # data_received(), inline: this runs once per read
            self._backlog += _receive_view[:nbytes]
            return
        waiting = self._read_frames(_receive_buffer, nbytes)
        if waiting is not None:
            self._wait_for(waiting)

    def data_received(self, data: bytes) -> None:
        if self._backlog is not None:  # a message waits for the database: the rest waits behind it
            self._backlog += data
            return
        waiting = self._read_frames(data, len(data))
        if waiting is not None:
            self._wait_for(waiting)

    def _read_frames(self, data: bytes | bytearray, end: int) -> Awaitable[None] | None:
        """Act on the frames in the first ``end`` bytes of ``data`` (after what was left of the last read), in order.

        Plain frames (see :mod:`relay.tornado.framing`) are read here; any other
        frame goes to the library whole, which answers pings and closes and
        fails the connection on anything malformed.  Returns what a message
        must wait for, with the bytes after it kept in ``_backlog``.

        After a read, ``data`` is the receive buffer itself and its one view is
        used, not a new slice of it per read; a frame's mask is sliced out of
        ``data``, not out of the view: memoryviews and their slices were a good
        part of what reading a frame cost (``benchmarks/RESULTS.md``, issue 12).
        """
        view = _receive_view if data is _receive_buffer else memoryview(data)
        kept = self._partial
        if kept is not None:
            kept += view[:end]
            data, self._partial = kept, None
            end = len(kept)
            view = memoryview(kept)
        offset = 0
        while offset < end:
            if not self._plain:  # closing or failed: the library has the rest
                return self._to_library(view[offset:end])
            owed = self._library_owes
            if owed:
                taken = min(owed, end - offset)
                self._library_owes = owed - taken
                offset += taken
                waiting = self._to_library(view[offset - taken : offset])
            else:
                header = frame_header(view, offset, end)
                if header is None:
                    break
                first, masked, size, length = header
                limit = self._max_size
                if first in _PLAIN:
                    plain = masked and (limit is None or length <= limit) and self._fragments is None
                else:
                    plain = first in _PLAIN_CONTROL and masked and length <= MAX_CONTROL_PAYLOAD
                if not plain:
                    self._library_owes = size + length
                    continue
                if end - offset < size + length:
                    break
                start = offset + size
                offset = start + length
                payload = unmask(view[start:offset], data[start - 4 : start])
                if first == PLAIN_PONG:
                    self.session.on_pong()
                    continue
                if first == PLAIN_PING:
                    self._pong(payload)
                    continue
                # A binary frame skips _message(): the connection is open (plain, above).
                waiting = self.session.on_binary(payload) if first == PLAIN_BINARY else self._message(True, payload)
            if waiting is not None:
                self._backlog = bytearray(view[offset:end])
                return waiting
        if offset < end:
            if kept is None:
                self._partial = bytearray(view[offset:end])
            else:  # a frame read in many pieces is appended to, not copied again per piece
                view.release()  # (a bytearray with a view on it cannot be resized)
                del kept[:offset]
                self._partial = kept
        return None

    def _to_library(self, data: memoryview) -> Awaitable[None] | None:
        """Give the library bytes of a frame that is not plain; act on what it makes of them."""
        websocket = self._library()
        # A memoryview, although typed bytes | bytearray: the library appends it to its own
        # buffer, which takes any bytes-like object (pinned in tests/unit/test_dependency_seams.py).
        websocket.receive_data(data)  # type: ignore[arg-type]
        events = websocket.events_received()
        self._send_protocol_output()
        waiting = None
        for event in events:  # at most one while the connection is open: it gets one frame at a time
            assert isinstance(event, Frame)
            waiting = self._receive(event)
        return waiting

    def _library(self) -> WebSocketProtocol:
        """The library's protocol, made at a frame boundary when it is first needed."""
        websocket = self._websocket
        if websocket is None:
            websocket = self._websocket = WebSocketProtocol(Side.SERVER, max_size=self._max_size, logger=_WEBSOCKET_LOG)
        return websocket

    def _pong(self, payload: bytes) -> None:
        """Answer a plain ping, with its payload (RFC 6455 §5.5.2), as the library would."""
        if self._transport is not None:
            self._transport.write(bytes((0x8A, len(payload))) + payload)

    def eof_received(self) -> None:
        self._library().receive_eof()
        self._send_protocol_output()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        self._plain = False
        # What was read behind a message still waiting is not acted upon now (nor was it when the
        # library had parsed it: a closed protocol acts on nothing), and must not reach the library
        # after its release below.
        self._backlog = self._partial = None
        websocket = self._websocket
        if websocket is not None:
            websocket.receive_eof()  # idempotent: settles the protocol's state as CLOSED
        self._node.connections.discard(self)
        self._stop_waiting()
        if self._opening is not None:  # lost before it was ever made
            return
        self.outbox.close()
        description = self.connection.describe()
        self.session.ended()
        sent = received = None
        if websocket is not None:
            sent, received = websocket.close_sent, websocket.close_rcvd
            _release(websocket)
        log.info(
            "close %s peer=%s sent=%s received=%s frames_dropped=%d",
            description,
            self.connection.peer,
            f"{sent.code} {sent.reason!r}" if sent else "-",
            f"{received.code} {received.reason!r}" if received else "-",
            self.outbox.frames_dropped,
        )

    def pause_writing(self) -> None:
        self.outbox.pause()

    def resume_writing(self) -> None:
        self.outbox.resume()

    # ------------------------------------------------------------------ messages

    def _receive(self, frame: Frame) -> Awaitable[None] | None:
        """One frame from the library: a message (or a part of one) for the session, or a control frame."""
        opcode = frame.opcode
        data = frame.data if type(frame.data) is bytes else bytes(frame.data)
        if opcode is _TEXT or opcode is _BINARY:
            if frame.fin:
                return self._message(opcode is _TEXT, data)
            self._fragments = bytearray(data)
            if opcode is _TEXT:
                self._text_decoder = _utf8_decoder()
                self._check_text(data, final=False)
            return None
        if opcode is _CONT:
            fragments = self._fragments
            if fragments is None:
                return None  # a text message that failed its UTF-8 check: the connection is failing
            fragments += data
            if self._text_decoder is not None and not self._check_text(data, final=frame.fin):
                return None
            if not frame.fin:
                return None
            is_text = self._text_decoder is not None
            self._fragments = self._text_decoder = None
            return self._message(is_text, bytes(fragments))
        if opcode is _PONG:
            self.session.on_pong()
        return None  # pings are answered and closes handled by the library

    def _message(self, is_text: bool, data: bytes) -> Awaitable[None] | None:
        if not self._plain:
            return None  # closing: nothing more is acted upon
        if not is_text:
            return self.session.on_binary(data)
        try:
            return self.session.on_text(data)
        except NotUtf8:
            self._fail(CloseCode.INVALID_DATA, "invalid UTF-8 in a text message")
            return None

    def _check_text(self, data: bytes, *, final: bool) -> bool:
        """Whether a fragmented text message is still UTF-8; if not, fail the connection (1007) now."""
        assert self._text_decoder is not None
        try:
            self._text_decoder.decode(data, final)
        except UnicodeDecodeError:
            self._fragments = self._text_decoder = None
            self._fail(CloseCode.INVALID_DATA, "invalid UTF-8 in a text message")
            return False
        return True

    def _wait_for(self, waiting: Awaitable[None]) -> None:
        """Stop reading until ``waiting`` is done; then act on the bytes already read (``_backlog``), in order."""
        assert self._transport is not None
        self._transport.pause_reading()
        self._handling = asyncio.ensure_future(self._drain_backlog(waiting))

    async def _drain_backlog(self, first: Awaitable[None]) -> None:
        waiting: Awaitable[None] | None = first
        try:
            while waiting is not None:
                await waiting
                backlog, self._backlog = self._backlog, None
                waiting = self._read_frames(backlog, len(backlog)) if backlog else None
        finally:
            self._backlog = self._handling = None
        transport = self._transport
        if transport is not None and not transport.is_closing() and not self._reading_stopped:
            transport.resume_reading()

    # ------------------------------------------------------------------ sending and closing

    def ping(self) -> None:
        """Send a WebSocket ping (the heartbeat's); the pong comes back to the session."""
        if self._plain and self._transport is not None:
            self._transport.write(_PING)

    def terminate(self, code: int, reason: str, *, abort: bool = False) -> None:
        """Close with ``code`` and ``reason``; ``abort`` cuts the TCP connection at once.

        Aborting is for peers that will not read the close frame anyway: a dead
        peer that missed its pong, a consumer stuck behind thousands of messages.
        """
        self.outbox.close()
        if self._plain:
            self._library().send_close(code, reason)
            self._send_protocol_output()
        if abort and self._transport is not None:
            self._transport.abort()

    def _too_slow(self) -> None:
        """Its outbox overflowed: a consumer so far behind is cut off (it may reconnect and resume)."""
        self.terminate(CloseCode.TRY_AGAIN_LATER, "consumer too slow", abort=True)

    def admitted(self) -> None:
        """The session authenticated the client: full-size messages from now on, and its place freed."""
        # An attribute of websockets' Protocol, read before each frame (pinned in test_dependency_seams.py).
        self._max_size = self._node.settings.max_message_bytes or None
        if self._websocket is not None:
            self._websocket.max_message_size = self._max_size
        self._stop_waiting()

    def _stop_waiting(self) -> None:
        if self._waiting_as is not None:
            self._node.waiting.give_back(self._waiting_as)
            self._waiting_as = None

    def stop_reading(self) -> asyncio.Task[None] | None:
        """Read nothing more; what was read goes on being handled: the task handling it, if any.

        The first step of a shutdown: an alert this client sent before it is
        stored (and confirmed) before the relay closes its database.
        """
        self._reading_stopped = True
        if self._transport is not None and not self._transport.is_closing():
            self._transport.pause_reading()
        return self._handling

    def shut_down(self, code: int, reason: str) -> None:
        """The relay is stopping: clean up now (its streams go offline), say why, and close.

        Cleaning up here rather than when the connection is lost matters: that
        happens on a later turn of the loop, after the status writer stopped.
        """
        self.session.ended()
        self.terminate(code, reason)
        if self._transport is not None:
            self._transport.close()  # writes what is buffered (the close frame), then closes

    def _fail(self, code: int, reason: str) -> None:
        self._library().fail(code, reason)
        self._send_protocol_output()

    def _send_protocol_output(self) -> None:
        """Write what the library wants written: pongs, close frames, the end of the stream."""
        websocket = self._websocket
        transport = self._transport
        if transport is None or websocket is None:
            return
        closing = websocket.state is not _OPEN
        if closing:
            self._plain = False  # the library reads whatever comes now, to finish the closing handshake
            if self._opening is None:
                self.outbox.close()  # nothing may follow a close frame
        for data in websocket.data_to_send():
            if data:
                transport.write(data)
            elif transport.can_write_eof():
                transport.write_eof()
            else:
                transport.close()
        if closing and self._close_timer is None and websocket.close_expected():
            self._close_timer = asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, transport.abort)
