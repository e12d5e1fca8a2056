"""Accepting connections a few at a time, so that a burst of them cannot stall the streams.

Tornado's own accept handler takes up to 128 connections each time the
listening socket is readable, and every one of them then costs a header parse
and an upgrade (about half a millisecond of Python each) before the loop gets
back to the frames of the streams it already carries.  A thousand sessions
arriving at once — a reconnect storm after a network blip, or an attacker
that upgrades and never authenticates, whose sessions the relay closes after
``RELAY_AUTH_TIMEOUT`` all at once and who comes straight back — then hold a
live stream's frames for hundreds of milliseconds (``benchmarks/flood.py``).

:class:`PacedAcceptor` takes at most :data:`ACCEPTS_PER_TURN` per turn of the
loop and leaves the rest in the kernel's accept queue (the listening socket is
level-triggered, so the loop comes back for them on its next turn, after the
frames).  On an idle loop a turn lasts microseconds, so thousands of
connections a second are still accepted; on a busy one, new connections wait
their turn instead of the streams waiting for them.

It hands each connection to ``take`` (``relay serve``: its
:class:`~relay.tornado.direct_upgrade.DirectUpgrades`), or to the
:class:`~tornado.httpserver.HTTPServer` through its public ``handle_stream``, as
Tornado's ``TCPServer`` does for plain TCP; TLS, which only the tests use, keeps
Tornado's own accept path.
"""

from __future__ import annotations

import errno
import functools
import logging
import socket
from collections.abc import Callable, Sequence
from typing import Final

from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream

log = logging.getLogger("relay.server")

ACCEPTS_PER_TURN: Final = 8
"""Connections accepted per turn of the loop (Tornado: 128).  Measured in benchmarks/RESULTS.md."""
_OUT_OF_RESOURCES: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
"""Why accept fails for every connection alike, until something is freed."""
ACCEPT_PAUSE: Final = 0.5
"""Seconds without accepting after ``accept`` failed (out of descriptors, say): the listening socket
stays readable, so trying again at once would spin the loop and fill the log."""


def to_http_server(server: HTTPServer, connection: socket.socket, address: tuple[str, int]) -> None:
    """Give a new connection to ``server``, as Tornado's ``TCPServer`` does."""
    stream = IOStream(connection, max_buffer_size=server.max_buffer_size, read_chunk_size=server.read_chunk_size)
    server.handle_stream(stream, address)


class PacedAcceptor:
    """Feeds ``server`` the connections of ``sockets``, at most ``per_turn`` per turn of the loop."""

    def __init__(
        self,
        server: HTTPServer,
        sockets: Sequence[socket.socket],
        per_turn: int = ACCEPTS_PER_TURN,
        *,
        take: Callable[[socket.socket, tuple[str, int]], None] | None = None,
    ) -> None:
        self._server = server
        self._take = take or functools.partial(to_http_server, server)
        """Who gets each new connection: the HTTP server, or someone who gives it the ones it does not want."""
        self._sockets = list(sockets)
        self._per_turn = per_turn
        self._loop: IOLoop | None = None
        self._paused: dict[socket.socket, object] = {}  # each paused socket and the timeout that resumes it

    def start(self) -> None:
        self._loop = IOLoop.current()
        for sock in self._sockets:
            sock.setblocking(False)
            self._loop.add_handler(sock, self._readable, IOLoop.READ)

    def stop(self) -> None:
        """Stop accepting and close the listening sockets (connections already made stay)."""
        for sock in self._sockets:
            if self._loop is not None:
                if sock in self._paused:
                    self._loop.remove_timeout(self._paused.pop(sock))
                else:
                    self._loop.remove_handler(sock)
            sock.close()
        self._sockets = []

    def _readable(self, sock: socket.socket, _events: int) -> None:
        for _ in range(self._per_turn):
            try:
                connection, address = sock.accept()
            except BlockingIOError:
                return  # none left waiting
            except ConnectionAbortedError:
                continue  # gone while it waited in the queue
            except OSError as error:
                if error.errno not in _OUT_OF_RESOURCES:
                    continue  # that connection's own trouble (Linux reports some on accept): the next one
                log.warning("accept failed (%s); not accepting for %g s", error, ACCEPT_PAUSE)
                self._pause(sock)
                return
            try:
                self._take(connection, address)
            except Exception:  # as Tornado's TCPServer does: one connection's failure is not the server's
                log.exception("could not take a new connection")
                connection.close()

    def _pause(self, sock: socket.socket) -> None:
        assert self._loop is not None
        self._loop.remove_handler(sock)
        self._paused[sock] = self._loop.call_later(ACCEPT_PAUSE, self._resume, sock)

    def _resume(self, sock: socket.socket) -> None:
        assert self._loop is not None
        del self._paused[sock]
        self._loop.add_handler(sock, self._readable, IOLoop.READ)
