"""The relay's acceptor takes a few connections per loop turn and backs off when accept fails.

Real listening sockets and real TCP connections; the HTTP server is a stand-in
that records what it is handed, so that only the acceptor's rules are tested.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import Any

import pytest
from tornado.iostream import IOStream

from relay.tornado import accepting
from relay.tornado.accepting import PacedAcceptor


class RecordingServer:
    """What PacedAcceptor needs of an HTTPServer: its buffer sizes and ``handle_stream``."""

    max_buffer_size = 1024 * 1024
    read_chunk_size = 64 * 1024

    def __init__(self) -> None:
        self.streams: list[IOStream] = []
        self.handed = asyncio.Event()
        self.wanted = 0

    def handle_stream(self, stream: IOStream, _address: Any) -> None:
        self.streams.append(stream)
        if len(self.streams) >= self.wanted:
            self.handed.set()


class FailingSocket:
    """A listening socket whose ``accept`` fails with EMFILE while ``failing`` is set."""

    def __init__(self, sock: socket.socket, error: int = errno.EMFILE) -> None:
        self.sock = sock
        self.error = error
        self.failing = True
        self.failures = 0
        self.failed = asyncio.Event()

    def fileno(self) -> int:
        return self.sock.fileno()

    def setblocking(self, flag: bool) -> None:
        self.sock.setblocking(flag)

    def close(self) -> None:
        self.sock.close()

    def accept(self) -> tuple[socket.socket, Any]:
        if self.failing:
            self.failures += 1
            self.failed.set()
            raise OSError(self.error, "accept failed")
        return self.sock.accept()


def listening() -> socket.socket:
    sock = socket.create_server(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


async def connect_clients(sock: socket.socket, count: int) -> list[asyncio.StreamWriter]:
    port = sock.getsockname()[1]
    return [(await asyncio.open_connection("127.0.0.1", port))[1] for _ in range(count)]


async def test_one_turn_accepts_at_most_its_share_and_the_rest_wait_in_the_queue() -> None:
    sock = listening()
    server = RecordingServer()
    acceptor = PacedAcceptor(server, [sock], per_turn=2)  # type: ignore[arg-type]
    clients = await connect_clients(sock, 5)
    await asyncio.sleep(0)  # nothing to await: the kernel has queued the connections already
    acceptor._readable(sock, 0)
    assert len(server.streams) == 2, "one turn: two connections, the other three wait"
    server.wanted = 5
    acceptor.start()
    await asyncio.wait_for(server.handed.wait(), 10)
    assert len(server.streams) == 5
    acceptor.stop()
    for client in clients:
        client.close()
    for stream in server.streams:
        stream.close()


async def test_a_failing_accept_pauses_accepting_instead_of_spinning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accepting, "ACCEPT_PAUSE", 0.05)
    sock = listening()
    flaky = FailingSocket(sock)
    server = RecordingServer()
    server.wanted = 3
    acceptor = PacedAcceptor(server, [flaky], per_turn=2)  # type: ignore[list-item, arg-type]
    acceptor.start()
    clients = await connect_clients(sock, 3)
    await asyncio.sleep(0.3)  # the socket stays readable all along: a spinning acceptor fails thousands of times
    assert 1 <= flaky.failures <= 10, f"{flaky.failures} failed accepts in 0.3 s"
    flaky.failing = False
    await asyncio.wait_for(server.handed.wait(), 10)
    assert len(server.streams) == 3, "once accept works again, the waiting connections are taken"

    flaky.failing = True
    flaky.failed.clear()
    late = await connect_clients(sock, 1)
    await asyncio.wait_for(flaky.failed.wait(), 10)
    assert acceptor._paused, "the failed accept paused it"
    acceptor.stop()  # while paused: the timeout that would resume it goes too
    await asyncio.sleep(0.1)
    assert not acceptor._paused
    assert sock.fileno() == -1, "the listening socket is closed"
    for client in [*clients, *late]:
        client.close()
    for stream in server.streams:
        stream.close()


async def test_one_connections_trouble_is_skipped_and_the_others_are_taken() -> None:
    sock = listening()
    flaky = FailingSocket(sock, errno.EPROTO)
    server = RecordingServer()
    acceptor = PacedAcceptor(server, [flaky], per_turn=4)  # type: ignore[list-item, arg-type]
    port = sock.getsockname()[1]
    clients = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
    acceptor._readable(flaky, 0)  # type: ignore[arg-type]
    assert flaky.failures == 4, "a protocol error is that connection's: the turn goes on"
    assert not acceptor._paused, "and accepting does not pause for it"

    def broken(_stream: IOStream, _address: Any) -> None:
        raise RuntimeError("the server could not take it")

    flaky.failing = False
    server.handle_stream = broken  # type: ignore[method-assign]
    acceptor._readable(flaky, 0)  # type: ignore[arg-type]
    for reader, _ in clients:
        assert await asyncio.wait_for(reader.read(), 10) == b"", "a connection it could not take is closed"
    acceptor.stop()
    for _, writer in clients:
        writer.close()
