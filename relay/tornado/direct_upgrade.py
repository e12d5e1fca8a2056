"""WebSocket upgrades read straight off the socket, without Tornado's HTTP stack (``relay serve``).

A phone's connection costs the relay most at its start: Tornado wraps the
socket in an ``IOStream``, reads and parses the request in an
``HTTP1Connection``, builds a ``RequestHandler`` (default headers, a formatted
``Date``), runs it as a task, and only then is the socket handed to asyncio.
That was about two thirds of the CPU of a connect and ``auth`` (profile in
``benchmarks/RESULTS.md``), which decides how fast a node takes back its phones
after a restart and how much a flood of handshakes takes from the streams.

:class:`DirectUpgrades` takes each connection as it is accepted and peeks at
its first bytes (``MSG_PEEK``: nothing is consumed).  A request that starts
``GET /api/streams/ws`` followed by a space or ``?`` is read here: the head
(bounded by :data:`MAX_HEAD_BYTES` and the header timeout), parsed by the
``websockets`` library's sans-I/O :class:`~websockets.server.ServerProtocol`,
decided by the same :func:`~relay.tornado.handler.admit` as Tornado's
:class:`~relay.tornado.handler.UpgradeHandler`, and its socket handed to an
asyncio transport.  A refusal is the same JSON answer as Tornado's, then the
connection is closed.  Every other connection goes to Tornado untouched, and so
does one whose first bytes are too few to tell (a peek does not wait).

Only the relay's own credentials (bearer header, ``?token=``) can be checked
without Tornado's request: with other authenticators in the chain, or behind a
proxy (whose ``X-Forwarded-For`` Tornado interprets), every connection goes to
Tornado.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Final
from urllib.parse import parse_qsl

from websockets.datastructures import Headers
from websockets.exceptions import InvalidMessage, SecurityError
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol

from relay.identity.authenticators import Identified
from relay.rest.base import ApiError, ErrorAnswer, describe_error
from relay.store import is_unavailable
from relay.tornado.handler import UpgradeContext, admit, start_connection

log = logging.getLogger("relay.connection")
access_log = logging.getLogger("tornado.access")
"""Refusals are logged where Tornado logs its answers, in its record's shape, so the same filters
(token redaction, the cap on 429 lines: :mod:`relay.logs`) apply."""

PATH: Final = b"GET /api/streams/ws"
_AFTER_PATH: Final = frozenset(b" ?")
MAX_HEAD_BYTES: Final = 64 * 1024
"""The longest request head read here (Tornado's own default ``max_header_size``); longer: 431."""
LINGER_SECONDS: Final = 2.0
"""How long a refused client has to read the refusal and close (see :class:`_Lingering`)."""
_HEAD_END: Final = re.compile(rb"\r?\n\r?\n")
"""Where a head ends, as Tornado's ``HTTP1Connection`` reads it (lines may end with a bare LF)."""
_LINE_END: Final = re.compile(rb"\r?\n")
_CONTROL_CHARACTERS: Final = re.compile(r"[\x00-\x08\x0e-\x1f]")
"""What Tornado replaces by a space in a query argument (``RequestHandler._get_arguments``)."""

ToTornado = Callable[[socket.socket, tuple[str, int]], None]


class DirectUpgrades:
    """Reads the upgrades among accepted connections and sends the rest to Tornado (``to_tornado``)."""

    def __init__(self, node: UpgradeContext, to_tornado: ToTornado) -> None:
        self._node = node
        self._to_tornado = to_tornado
        self._pending: set[_Upgrade] = set()
        self._answering: set[asyncio.Task[None]] = set()
        self._lingering: set[_Lingering] = set()

    def take(self, sock: socket.socket, address: tuple[str, int]) -> None:
        """A connection just accepted."""
        authenticators = self._node.authenticators
        if self._node.settings.behind_proxy or not authenticators.tokens_only:
            self._to_tornado(sock, address)
            return
        sock.setblocking(False)  # accept() gives blocking sockets, whatever the listening one is
        _Upgrade(self, sock, address).start()

    async def close(self) -> None:
        """Drop the connections still being read or waiting for their credentials to be checked.

        A lookup of a token does not hold the stop: the database may be the
        reason for it, and would answer only at its own timeout.
        """
        for upgrade in list(self._pending):
            upgrade.drop()
        for task in self._answering:
            task.cancel()
        if self._answering:
            await asyncio.gather(*self._answering, return_exceptions=True)
        for lingering in list(self._lingering):  # refusals sent: the relay does not wait for their readers
            lingering.close()


class _Upgrade:
    """One accepted connection, from its first byte until it is Tornado's, a WebSocket, or refused."""

    __slots__ = ("_address", "_head", "_loop", "_ours", "_owner", "_sock", "_started", "_timer")

    def __init__(self, owner: DirectUpgrades, sock: socket.socket, address: tuple[str, int]) -> None:
        self._owner = owner
        self._sock = sock
        self._address = address
        self._loop = asyncio.get_running_loop()
        self._head = bytearray()
        self._ours = False  # the request line is an upgrade's: its head is read here
        self._timer: asyncio.TimerHandle | None = None
        self._started = time.perf_counter()

    def start(self) -> None:
        self._owner._pending.add(self)
        self._timer = self._loop.call_later(self._owner._node.settings.header_timeout, self.drop)
        if self._peek():  # the request is usually there already: no wait for the loop
            self._loop.add_reader(self._sock, self._readable)

    def drop(self) -> None:
        """No request in time (the header timeout), or the relay stops: close, as Tornado does.

        What the client sent and nobody took (a start looked at, not read) is
        read first: closed on unread bytes, a socket ends with a reset.
        """
        self._done()
        with contextlib.suppress(OSError):
            self._sock.recv(MAX_HEAD_BYTES)
        self._sock.close()

    def _done(self) -> None:
        self._owner._pending.discard(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._loop.remove_reader(self._sock)

    def _readable(self) -> None:
        if self._ours:
            self._read()
        else:
            self._peek()

    def _peek(self) -> bool:
        """Look at the request line without taking it; True while nothing has come yet.

        A start too short to tell goes to Tornado like any other: peeked bytes
        stay in the socket, which stays readable, so waiting here for the rest
        would wake the loop at every turn until it came.
        """
        try:
            start = self._sock.recv(len(PATH) + 1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            self.drop()
            return False
        if not start:
            self.drop()  # closed before it said anything
            return False
        if not (len(start) == len(PATH) + 1 and start.startswith(PATH) and start[-1] in _AFTER_PATH):
            self._done()
            try:
                self._owner._to_tornado(self._sock, self._address)
            except Exception:  # as the acceptor does: one connection's failure is not the server's
                log.exception("could not give a new connection to Tornado")
                self._sock.close()
            return False
        self._ours = True
        return self._read()

    def _read(self) -> bool:
        """Take the head off the socket; True while it is not all there."""
        try:
            chunk = self._sock.recv(MAX_HEAD_BYTES + 1 - len(self._head))
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            self.drop()
            return False
        if not chunk:
            self.drop()
            return False
        searched_from = max(0, len(self._head) - 3)
        self._head += chunk
        found = _HEAD_END.search(self._head, searched_from)
        if found is None:
            if len(self._head) <= MAX_HEAD_BYTES:
                return True
            self._done()
            self._refuse(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "the request's head is too long")
            return False
        self._done()
        head, received = bytes(self._head[: found.end()]), bytes(self._head[found.end() :])
        if head.count(b"\n") != head.count(b"\r\n"):
            head = _LINE_END.sub(b"\r\n", head)  # websockets reads CRLF only
        task = self._loop.create_task(self._answer(head, received))
        answering = self._owner._answering
        answering.add(task)
        task.add_done_callback(answering.discard)
        return False

    async def _answer(self, head: bytes, received: bytes) -> None:
        node = self._owner._node
        protocol = ServerProtocol()
        protocol.receive_data(head)
        requests = protocol.events_received()
        if not requests or not isinstance(request := requests[0], Request):
            self._refuse_unparsed(protocol.handshake_exc)
            return

        def identify() -> Awaitable[Identified | None]:
            return node.authenticators.identify_credentials(
                request.headers.get("Authorization"), _query_token(request.path)
            )

        try:
            admission = await admit(node, request, peer=self._address[0], identify=identify, protocol=protocol)
        except asyncio.CancelledError:  # the relay stops
            self._sock.close()
            raise
        except Exception as error:
            self._refuse_error(error, request)
            return
        await start_connection(node, admission, self._sock, received)

    def _refuse_unparsed(self, error: Exception | None) -> None:
        if isinstance(error, SecurityError):  # a line too long, too many headers
            self._refuse(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, str(error))
        else:
            reason = error.__cause__ if isinstance(error, InvalidMessage) and error.__cause__ else error
            self._refuse(HTTPStatus.BAD_REQUEST, f"not a valid HTTP request: {reason}"[:200])

    def _refuse_error(self, error: Exception, request: Request) -> None:
        if is_unavailable(error):
            log.warning("GET /api/streams/ws: database unavailable: %s", error)
        elif not isinstance(error, ApiError):
            log.exception("the upgrade of %s failed", self._address[0])
        status = error.status_code if isinstance(error, ApiError) else 500
        self._answer_error(describe_error(status, error), request.path)

    def _refuse(self, status: HTTPStatus, message: str) -> None:
        self._answer_error(describe_error(status, ApiError(status, message)), "/api/streams/ws")

    def _answer_error(self, answer: ErrorAnswer, path: str) -> None:
        """Send the JSON refusal and close, logged as Tornado logs its answers."""
        headers = Headers(
            [
                ("Content-Type", "application/json"),
                ("Cache-Control", "no-store"),
                *answer.headers.items(),
                ("Connection", "close"),
            ]
        )
        body = answer.body()
        headers["Content-Length"] = str(len(body))
        response = Response(answer.status, HTTPStatus(answer.status).phrase, headers, body)
        try:
            self._sock.send(response.serialize())
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._sock.close()  # gone: nobody to tell
        else:
            _Lingering(self._loop, self._sock, self._owner._lingering)
        elapsed_ms = 1000 * (time.perf_counter() - self._started)
        level = logging.WARNING if answer.status < 500 else logging.ERROR
        access_log.log(level, "%d %s %.2fms", answer.status, f"GET {path} ({self._address[0]})", elapsed_ms)


class _Lingering:
    """A refused connection, read to its end before it is closed, so that the refusal reaches the client.

    Closing a socket with unread bytes in it makes the kernel answer with a
    reset, which can destroy the answer before the client reads it (a head
    refused while the client is still sending it, say).  What comes is read
    and dropped until the client closes, for at most :data:`LINGER_SECONDS`.
    """

    __slots__ = ("_all", "_loop", "_sock", "_timer")

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, all_: set[_Lingering]) -> None:
        self._loop = loop
        self._sock = sock
        self._all = all_
        """The lingering connections, which the relay's stop closes."""
        all_.add(self)
        self._timer = loop.call_later(LINGER_SECONDS, self.close)
        loop.add_reader(sock, self._readable)

    def _readable(self) -> None:
        try:
            if self._sock.recv(MAX_HEAD_BYTES):
                return
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self.close()

    def close(self) -> None:
        self._all.discard(self)
        self._timer.cancel()
        self._loop.remove_reader(self._sock)
        self._sock.close()


def _query_token(path: str) -> str | None:
    """``?token=`` as Tornado's ``get_query_argument`` gives it: the last one, stripped; None when empty.

    Tornado reads the query as Latin-1 and decodes only the argument asked for;
    one that is not UTF-8 is a 400 (:class:`ApiError`), as there.
    """
    _, _, query = path.partition("?")
    values = [value for name, value in parse_qsl(query, keep_blank_values=True, encoding="latin-1") if name == "token"]
    if not values:
        return None
    try:
        token = values[-1].encode("latin-1").decode("utf-8")
    except UnicodeDecodeError as error:
        raise ApiError(400, "the token is not UTF-8") from error
    return _CONTROL_CHARACTERS.sub(" ", token).strip() or None
