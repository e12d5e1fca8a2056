"""A TCP proxy a test can unplug: the network between one client and the relay.

``cut()`` drops every connection through it, and while it is cut each new
connection is accepted and dropped at once, as a phone without network sees
it; :meth:`TcpProxy.attempt_while_cut` lets a test wait until the client has
noticed and tried again.  ``restore()`` lets connections through again.
Otherwise bytes go straight through, so the client and the relay behave
exactly as they would without it; with :attr:`TcpProxy.delay` set, what the
target answers waits that long on the way (a slow network, to widen a race).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable


class TcpProxy:
    """Forwards ``127.0.0.1:port`` to ``127.0.0.1:target_port``; see the module docstring."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.delay = 0.0
        """Seconds each chunk from the target waits before it goes on to the client."""
        self.port = 0
        self._server: asyncio.Server | None = None
        self._cut = False
        self._attempt = asyncio.Event()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def cut(self) -> None:
        """Drop the open connections, and every new one until :meth:`restore`."""
        self._cut = True
        self._attempt.clear()
        for writer in list(self._writers):
            writer.transport.abort()

    def restore(self) -> None:
        self._cut = False

    async def attempt_while_cut(self) -> None:
        """Return once a client tried to connect while the proxy was cut."""
        await self._attempt.wait()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self._cut:
            client_writer.transport.abort()
            self._attempt.set()
            return
        try:
            relay_reader, relay_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_writer.transport.abort()
            return
        writers = (client_writer, relay_writer)
        self._writers.update(writers)
        pipes = [
            asyncio.ensure_future(_pipe(client_reader, relay_writer, lambda: 0.0)),
            asyncio.ensure_future(_pipe(relay_reader, client_writer, lambda: self.delay)),
        ]
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pipe in pipes:
                pipe.cancel()
            for writer in writers:
                self._writers.discard(writer)
                writer.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: Callable[[], float]) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            if seconds := delay():
                await asyncio.sleep(seconds)
            writer.write(data)
            await writer.drain()
