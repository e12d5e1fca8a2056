"""``GET /api/streams/ws``: the WebSocket upgrade, and handing the socket to asyncio.

The upgrade is an HTTP request like any other, so Tornado's HTTP server (the
relay's own, or Panel's) reads it and routes it here.  :class:`UpgradeHandler`
answers what is not a valid upgrade with a JSON error (503 while the relay
starts, 426 without ``Upgrade: websocket``, 400 for a bad handshake, 403 for a
foreign browser ``Origin``), checks credentials that came with the request,
and then takes the connection out of Tornado's hands with
:meth:`~tornado.web.RequestHandler.detach`, the public hook Tornado offers "for
implementing protocols like websockets that tunnel over an HTTP handshake".

The handshake itself is checked and answered by the ``websockets`` library
(:meth:`websockets.server.ServerProtocol.accept`).  The socket then goes to an
asyncio transport (:meth:`asyncio.loop.connect_accepted_socket`; on uvloop its
reads and scatter-gather writes run in C) driven by a
:class:`~relay.tornado.connection.WebSocketConnection`.  A TLS connection (``panel
serve --ssl-certfile``) cannot leave its ``SSLIOStream``, whose TLS state lives
in Python's ``ssl`` objects: it stays there, behind the same transport interface
(:mod:`relay.tornado.iostream_transport`).

Nothing of the handler, its request or its stream is kept once the connection
runs: an idle connection is the protocol objects of :mod:`~relay.tornado.connection`
and the transport, no more.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Protocol
from urllib.parse import urlsplit

from tornado.iostream import IOStream, SSLIOStream, StreamClosedError
from websockets.datastructures import Headers
from websockets.http11 import Request
from websockets.server import ServerProtocol

from relay.identity.authenticators import AuthenticationFailed, Identified
from relay.rest.base import ApiError, JsonHandler
from relay.tornado.connection import SocketContext, WebSocketConnection
from relay.tornado.iostream_transport import IOStreamTransport

log = logging.getLogger("relay.connection")

_READ_CHUNK = 64 * 1024
_handover_buffer = bytearray(_READ_CHUNK)
"""What every upgrade takes Tornado's leftover bytes through, shared: :func:`_buffered` runs without a
pause from its first read to the stream's close.  A buffer per upgrade was 64 KB of heap per connection,
kept until a garbage collection freed the stream's cycles: pages that a flood of connections left behind."""


class UpgradeContext(SocketContext, Protocol):
    """What the upgrade needs of its relay node besides what a connection needs."""

    @property
    def ready(self) -> bool: ...


class UpgradeHandler(JsonHandler):
    """See the module docstring."""

    node: UpgradeContext

    def initialize(self, node: UpgradeContext) -> None:
        self.node = node

    async def get(self) -> None:
        node = self.node
        if not node.ready:
            raise ApiError(503, "the relay is starting; try again in a moment", "unavailable")
        handshake = self._accept()
        origin = self.request.headers.get("Origin")
        if origin is not None and not self._allowed_origin(origin):
            raise ApiError(403, f"the origin {origin[:200]!r} may not open this WebSocket", "forbidden")
        identity: Identified | None = None
        refused = False
        try:
            identity = await node.authenticators.identify_upgrade(self)
        except AuthenticationFailed:
            refused = True  # told after the upgrade, with close 1008, as the contract says
        peer = self.request.remote_ip or "-"
        waiting_as = None
        if identity is None and not refused:
            if not node.waiting.take(peer):
                raise ApiError(
                    429,
                    "too many connections are waiting to authenticate; authenticate in the upgrade, or try again",
                    headers={"Retry-After": "1"},
                )
            waiting_as = peer

        def connection(received: bytes) -> WebSocketConnection:
            return WebSocketConnection(
                node,
                peer=peer,
                handshake=handshake,
                identity=identity,
                refused=refused,
                received=received,
                waiting_as=waiting_as,
            )

        stream = self.detach()
        if isinstance(stream, SSLIOStream):
            IOStreamTransport(stream, connection(b""))
        else:
            await self._take_socket(stream, connection)

    def _accept(self) -> bytes:
        """The ``101 Switching Protocols`` answer, or an :class:`ApiError` from the library's verdict."""
        headers = Headers()
        for name, value in self.request.headers.get_all():
            headers[name] = value
        response = ServerProtocol().accept(Request(self.request.uri or "/", headers))
        if response.status_code == 101:
            return response.serialize()
        if "Upgrade" in response.headers:
            self.set_header("Upgrade", response.headers["Upgrade"])
        reason = response.body.decode("utf-8", "replace").strip().splitlines()[0] if response.body else ""
        raise ApiError(response.status_code, reason or "not a WebSocket handshake")

    def _allowed_origin(self, origin: str) -> bool:
        """Same-origin browsers and the configured origins (requests without ``Origin`` are not browsers)."""
        allowed = self.node.settings.allowed_origins
        if "*" in allowed or origin.rstrip("/") in allowed:
            return True
        return urlsplit(origin).netloc.lower() == (self.request.host or "").lower()

    async def _take_socket(self, stream: IOStream, connection: Callable[[bytes], WebSocketConnection]) -> None:
        """Move the connection from Tornado's stream to an asyncio transport, losing no byte."""
        settings = self.node.settings
        try:
            sock = stream.socket.dup()
        except OSError:
            stream.close()
            return
        received = _buffered(stream)
        stream.close()  # closes Tornado's descriptor; the connection lives on in the duplicate
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if settings.socket_send_buffer > 0:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, settings.socket_send_buffer)
            protocol = connection(received)
            await asyncio.get_running_loop().connect_accepted_socket(lambda: protocol, sock)
        except OSError as error:
            log.info("connection lost during the upgrade: %s", error)
            sock.close()


def _buffered(stream: IOStream) -> bytes:
    """What Tornado already read past the upgrade request (from a client that did not wait for the 101).

    ``read_into(partial=True)`` completes at once when Tornado holds bytes, or
    when the socket has some; otherwise it is left pending, and closing the
    stream ends it.
    """
    chunks: list[bytes] = []
    buffer = _handover_buffer
    while True:
        try:
            future = asyncio.ensure_future(stream.read_into(buffer, partial=True))  # a Future already
        except StreamClosedError:
            break
        if not future.done() or future.exception() is not None:
            break
        chunks.append(bytes(buffer[: future.result()]))
    return b"".join(chunks)
