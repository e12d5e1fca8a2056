"""One WebSocket session on ``/api/streams/ws``.

The session authenticates the client (``Authorization`` header, ``?token=``, a
first ``auth`` message, or the ``token`` of the first ``register``/``subscribe``),
parses each message with :mod:`relay.protocol` and hands it to the
:class:`~relay.router.Router`.  It owns the connection's outbox and answers
rejected messages with ``error``; it knows nothing of other connections.

Outgoing bytes bypass Tornado's ``write_message`` (which wraps every write in a
Task and copies the payload per consumer): the :class:`~relay.outbox.Outbox`
writes ready-made frames to the underlying ``IOStream``.  That is sound because
the relay never negotiates compression, so a frame is just header + payload.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tornado.httputil import HTTPHeaders
from tornado.ioloop import IOLoop
from tornado.websocket import WebSocketHandler, WebSocketProtocol, WebSocketProtocol13

from relay.connection import Connection
from relay.framing import LeanFrameReader
from relay.metrics import COUNTERS
from relay.outbox import Outbox
from relay.protocol import (
    AlertIn,
    Auth,
    Ping,
    ProtocolError,
    Register,
    Subscribe,
    Unsubscribe,
    VideoFrame,
    parse_binary,
    parse_text,
)

if TYPE_CHECKING:
    from relay.app import Relay

log = logging.getLogger("relay.session")

POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013


class StreamSocket(WebSocketHandler):
    """The ``/api/streams/ws`` endpoint; see the module docstring."""

    relay: Relay
    conn: Connection | None = None
    _auth_deadline: object | None = None
    _close_reason = ""

    def initialize(self, relay: Relay) -> None:
        self.relay = relay

    # ------------------------------------------------------------------ handshake

    def check_origin(self, origin: str) -> bool:
        """Same-origin browsers and the configured origins; clients without ``Origin`` pass.

        Tornado does not call this for requests without an ``Origin`` header
        (native apps, scripts): they are judged by their token alone.
        """
        allowed = self.relay.settings.allowed_origins
        if "*" in allowed or origin.rstrip("/") in allowed:
            return True
        return urlsplit(origin).netloc.lower() == (self.request.host or "").lower()

    @property
    def ping_interval(self) -> float | None:
        """Disable Tornado's per-connection ping task; :mod:`relay.heartbeat` pings all at once."""
        return None

    @property
    def max_message_size(self) -> int:
        return self.relay.settings.max_message_bytes

    def get_compression_options(self) -> None:
        """No permessage-deflate: JPEG does not compress, and the outbox writes raw frames."""
        return

    def get_websocket_protocol(self) -> WebSocketProtocol | None:
        """Tornado's protocol, reading frames with :class:`~relay.framing.LeanFrameReader`."""
        protocol = super().get_websocket_protocol()
        if isinstance(protocol, WebSocketProtocol13):
            return LeanFrameReader(self, False, protocol.params)
        return protocol

    async def open(self, *args: Any, **kwargs: Any) -> None:
        assert self.ws_connection is not None
        assert self.ws_connection.stream is not None
        settings = self.relay.settings
        outbox = Outbox(
            self.ws_connection.stream,
            max_frames=settings.max_queued_frames,
            max_control=settings.max_queued_messages,
            on_overflow=lambda: self.terminate(TRY_AGAIN_LATER, "consumer too slow", abort=True),
        )
        self.conn = Connection(
            self.relay.node_id,
            self.request.remote_ip or "-",
            outbox,
            max_alerts_per_second=settings.max_alerts_per_second,
        )
        COUNTERS.connections_opened += 1
        self.set_nodelay(True)
        if settings.socket_send_buffer > 0:
            stream = self.ws_connection.stream
            stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, settings.socket_send_buffer)
        self.relay.heartbeat.add(self)
        identity = await self.relay.identify(self)
        how = "upgrade request"
        if identity is None and (token := self.get_query_argument("token", None)):
            identity = await self.relay.tokens.user_id(token) or False
            how = "query token"
        if identity is None:
            self._auth_deadline = IOLoop.current().call_later(settings.auth_timeout, self._auth_timed_out)
        else:
            self._accept(identity or None, how)
        self._forget_handshake()

    def _forget_handshake(self) -> None:
        """Drop what only the upgrade request needed: a relay holds thousands of idle sessions.

        The request's headers and the template namespace are a fifth of an idle
        session's memory; Tornado itself drops the latter when a handler finishes.
        """
        self.request.headers = HTTPHeaders()
        self.request.connection = None  # detached from HTTP once upgraded; it kept the parsed request
        self.ui = None  # type: ignore[assignment]

    async def _authenticate(self, token: str, how: str) -> bool:
        """Authenticate by a token that came in a message."""
        return self._accept(await self.relay.tokens.user_id(token), how)

    def _accept(self, user_id: str | None, how: str) -> bool:
        """Admit the connection as ``user_id``, or close it 1008 when there is none."""
        conn = self.conn
        assert conn is not None
        if user_id is None:
            log.info("auth failed via %s peer=%s", how, conn.peer)
            self.terminate(POLICY_VIOLATION, "Unauthorized")
            return False
        conn.user_id = user_id
        if self._auth_deadline is not None:
            IOLoop.current().remove_timeout(self._auth_deadline)
            self._auth_deadline = None
        conn.send({"type": "auth-ok", "userId": user_id})
        log.info("open user=%s peer=%s auth=%s", user_id, conn.peer, how)
        return True

    def _auth_timed_out(self) -> None:
        self._auth_deadline = None
        if self.conn is not None and self.conn.user_id is None:
            self.terminate(POLICY_VIOLATION, "Unauthorized")

    # ------------------------------------------------------------------ messages

    def on_message(self, message: str | bytes) -> Awaitable[None] | None:
        conn = self.conn
        if conn is None or conn.outbox.closed:
            return None
        try:
            if type(message) is bytes:
                frame = parse_binary(message)
                if conn.user_id is None:
                    raise _unauthorized()
                return self.relay.router.frame(conn, frame)
            parsed = parse_text(message)
            if type(parsed) is VideoFrame:
                if conn.user_id is None:
                    raise _unauthorized()
                return self.relay.router.frame(conn, parsed)
        except ProtocolError as error:
            conn.send_error(error)
            return None
        return self._handle(conn, parsed)

    async def _handle(self, conn: Connection, message: object) -> None:
        """Everything but frames: may wait for the database, one message at a time."""
        router = self.relay.router
        try:
            if conn.user_id is None:
                token = getattr(message, "token", None)
                if isinstance(message, Ping):
                    conn.send({"type": "pong"})
                    return
                if token is None:
                    raise _unauthorized()
                if not await self._authenticate(token, f"{type(message).__name__.lower()} message"):
                    return
                if isinstance(message, Auth):
                    return
            match message:
                case AlertIn():
                    await router.alert(conn, message)
                case Register():
                    await router.register(conn, message)
                case Subscribe():
                    await router.subscribe(conn, message)
                case Unsubscribe():
                    router.unsubscribe(conn, message)
                case Ping():
                    conn.send({"type": "pong"})
                case Auth():
                    if await self.relay.tokens.user_id(message.token) != conn.user_id:
                        raise ProtocolError("unauthorized", "this connection is already authenticated as another user")
        except ProtocolError as error:
            conn.send_error(error)

    def on_pong(self, data: bytes) -> None:
        if self.conn is not None:
            self.conn.alive = True

    # ------------------------------------------------------------------ closing

    def terminate(self, code: int, reason: str, *, abort: bool = False) -> None:
        """Close with ``code`` and ``reason``; ``abort`` cuts the TCP connection at once.

        Aborting is for peers that will not read the close frame anyway: a dead
        peer that missed its pong, a consumer stuck behind thousands of messages.
        """
        self._close_reason = reason
        if self.conn is not None:
            self.conn.outbox.close()
        connection = self.ws_connection
        if connection is None:
            return
        self.close(code, reason)
        if abort and connection.stream is not None:
            connection.stream.close()

    def on_close(self) -> None:
        if self._auth_deadline is not None:
            IOLoop.current().remove_timeout(self._auth_deadline)
            self._auth_deadline = None
        self.relay.heartbeat.discard(self)
        conn = self.conn
        if conn is None:
            return
        description = conn.describe()
        self.relay.router.disconnect(conn)
        reason = self._close_reason or self.close_reason or ("client closed" if self.close_code else "connection lost")
        log.info(
            "close %s peer=%s code=%s reason=%r frames_dropped=%d",
            description,
            conn.peer,
            self.close_code,
            reason,
            conn.outbox.frames_dropped,
        )


def _unauthorized() -> ProtocolError:
    return ProtocolError("unauthorized", "authenticate first: send {'type': 'auth', 'token': ...}")
