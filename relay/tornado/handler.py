"""``GET /api/streams/ws``: the rules of the WebSocket upgrade, and Tornado's way in to them.

:func:`admit` decides an upgrade, whoever read its request: 503 while the
relay starts, 426 without ``Upgrade: websocket``, 400 for a bad handshake, 403
for a foreign browser ``Origin``, 429 when too many connections already wait to
authenticate; otherwise the credentials that came with the request are checked
and the connection goes ahead.  The handshake itself is checked and answered by
the ``websockets`` library (:meth:`websockets.server.ServerProtocol.accept`).

Two readers use it.  ``relay serve`` reads an upgrade straight off the socket
(:mod:`relay.tornado.direct_upgrade`); everywhere else (Panel's server, TLS, a
relay behind a proxy, a second request on a kept-alive connection) Tornado's
HTTP server reads it and routes it to :class:`UpgradeHandler`, which answers a
refusal as JSON like every REST handler and then takes the connection out of
Tornado's hands with :meth:`~tornado.web.RequestHandler.detach`, the public hook
Tornado offers "for implementing protocols like websockets that tunnel over an
HTTP handshake".

The socket then goes to an asyncio transport
(:meth:`asyncio.loop.connect_accepted_socket`; on uvloop its reads and
scatter-gather writes run in C) driven by a
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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
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


_SINGLE_HEADERS = ("Host", "Origin", "Authorization")
"""Headers an upgrade may carry once: which of two would decide is a guess (websockets refuses to read them)."""


class UpgradeContext(SocketContext, Protocol):
    """What the upgrade needs of its relay node besides what a connection needs."""

    @property
    def ready(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Admission:
    """An upgrade the relay goes ahead with: what its connection starts from."""

    peer: str
    handshake: bytes
    """The ``101 Switching Protocols`` answer, sent when the connection is made."""
    identity: Identified | None
    """Who the request's credentials name; None when it came without (or with wrong) ones."""
    refused: bool
    """Wrong credentials came with the request: told after the upgrade, with close 1008, as the contract says."""
    waiting_as: str | None
    """The address whose place of ``node.waiting`` the connection holds until it authenticates."""

    def connection(self, node: SocketContext, received: bytes) -> WebSocketConnection:
        """The connection's protocol; ``received`` is what the client sent past its request."""
        return WebSocketConnection(
            node,
            peer=self.peer,
            handshake=self.handshake,
            identity=self.identity,
            refused=self.refused,
            received=received,
            waiting_as=self.waiting_as,
        )

    def abandon(self, node: SocketContext) -> None:
        """The connection never started (its socket failed in the handover): give back its place."""
        if self.waiting_as is not None:
            node.waiting.give_back(self.waiting_as)


async def admit(
    node: UpgradeContext,
    request: Request,
    *,
    peer: str,
    identify: Callable[[], Awaitable[Identified | None]],
    protocol: ServerProtocol | None = None,
) -> Admission:
    """Whether the upgrade ``request`` from ``peer`` goes ahead; raises :class:`ApiError` if not.

    ``identify`` checks the credentials that came with it (once none of the
    headers it may read came twice), ``protocol`` is the library's handshake
    state if the request was parsed by one.
    """
    if not node.ready:
        raise ApiError(503, "the relay is starting; try again in a moment", "unavailable")
    for name in _SINGLE_HEADERS:
        if len(request.headers.get_all(name)) > 1:
            raise ApiError(400, f"more than one {name} header")
    handshake = _accept(request, protocol or ServerProtocol())
    origin = request.headers.get("Origin")
    if origin is not None and not _allowed_origin(node, origin, request.headers.get("Host", "")):
        raise ApiError(403, f"the origin {origin[:200]!r} may not open this WebSocket", "forbidden")
    identity: Identified | None = None
    refused = False
    try:
        identity = await identify()
    except AuthenticationFailed:
        refused = True
    waiting_as = None
    if identity is None and not refused:
        if not node.waiting.take(peer):
            raise ApiError(
                429,
                "too many connections are waiting to authenticate; authenticate in the upgrade, or try again",
                headers={"Retry-After": "1"},
            )
        waiting_as = peer
    return Admission(peer, handshake, identity, refused, waiting_as)


def _accept(request: Request, protocol: ServerProtocol) -> bytes:
    """The ``101 Switching Protocols`` answer, or an :class:`ApiError` from the library's verdict."""
    response = protocol.accept(request)
    if response.status_code == 101:
        return response.serialize()
    headers = {"Upgrade": response.headers["Upgrade"]} if "Upgrade" in response.headers else {}
    reason = response.body.decode("utf-8", "replace").strip().splitlines()[0] if response.body else ""
    raise ApiError(response.status_code, reason or "not a WebSocket handshake", headers=headers)


def _allowed_origin(node: UpgradeContext, origin: str, host: str) -> bool:
    """Same-origin browsers and the configured origins (requests without ``Origin`` are not browsers)."""
    allowed = node.settings.allowed_origins
    if "*" in allowed or origin.rstrip("/") in allowed:
        return True
    return urlsplit(origin).netloc.lower() == host.lower()


async def start_connection(node: SocketContext, admission: Admission, sock: socket.socket, received: bytes) -> None:
    """Run the admitted connection on ``sock`` (the caller's no more) under an asyncio transport."""
    settings = node.settings
    protocol = admission.connection(node, received)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if settings.socket_send_buffer > 0:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, settings.socket_send_buffer)
        await asyncio.get_running_loop().connect_accepted_socket(lambda: protocol, sock)
    except OSError as error:
        log.info("connection lost during the upgrade: %s", error)
        sock.close()
        admission.abandon(node)


class UpgradeHandler(JsonHandler):
    """The upgrade as Tornado read it; see the module docstring."""

    node: UpgradeContext

    def initialize(self, node: UpgradeContext) -> None:
        self.node = node

    async def get(self) -> None:
        headers = Headers()
        for name, value in self.request.headers.get_all():
            headers[name] = value
        admission = await admit(
            self.node,
            Request(self.request.uri or "/", headers),
            peer=self.request.remote_ip or "-",
            identify=lambda: self.node.authenticators.identify_upgrade(self),
        )
        stream = self.detach()
        if isinstance(stream, SSLIOStream):
            IOStreamTransport(stream, admission.connection(self.node, b""))
        else:
            await self._take_socket(stream, admission)

    async def _take_socket(self, stream: IOStream, admission: Admission) -> None:
        """Move the connection from Tornado's stream to an asyncio transport, losing no byte."""
        try:
            if stream.socket is None:  # the client went while its credentials were checked
                raise ConnectionResetError
            sock = stream.socket.dup()
        except OSError:
            stream.close()
            admission.abandon(self.node)
            return
        received = _buffered(stream)
        stream.close()  # closes Tornado's descriptor; the connection lives on in the duplicate
        await start_connection(self.node, admission, sock, received)


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
