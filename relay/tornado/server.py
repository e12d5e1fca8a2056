"""``relay serve``: a relay node on its own Tornado HTTP server, until SIGINT or SIGTERM.

The tests start the same :class:`RelayServer` on an ephemeral port.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import signal
import ssl
from collections.abc import Coroutine
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application

from relay.app import Relay
from relay.config import Settings
from relay.tornado.accepting import PacedAcceptor, to_http_server
from relay.tornado.direct_upgrade import DirectUpgrades

log = logging.getLogger("relay")

MAX_BODY_BYTES = 16 * 1024 * 1024


def freeze_the_heap() -> None:
    """Put every object alive now out of the garbage collector's sight (:func:`gc.freeze`), once serving.

    A serving process holds a few hundred thousand objects that live as long as
    it does (the modules of Tornado, SQLAlchemy, pandas, Bokeh, DuckDB; the
    application).  Every full collection walks them all, and connections
    coming and going trigger full collections: with a thousand sessions
    opening at once that was a pause of 160-240 ms each time, during which no
    frame moves (``benchmarks/flood.py``).  Frozen, they are never walked;
    they are still freed by reference counting if they die.
    """
    gc.collect()
    gc.freeze()


def run_event_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on uvloop where it is installed (Linux, macOS), else on asyncio's loop.

    uvloop's event loop is written in C: its transports read and write sockets
    without Python in between, which is most of what relaying frames costs.
    """
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


class RelayServer:
    """A :class:`~relay.app.Relay` on its own HTTP server (``ssl_context`` for TLS, in tests)."""

    def __init__(self, settings: Settings, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.settings = settings
        self.relay = Relay(settings)
        self.port = settings.port
        self._ssl_context = ssl_context
        self._server: HTTPServer | None = None
        self._acceptor: PacedAcceptor | None = None
        self._upgrades: DirectUpgrades | None = None

    def application(self, **tornado_settings: Any) -> Application:
        return Application(self.relay.routes(), **tornado_settings)

    async def start(self) -> int:
        """Start serving; returns the port (useful when the settings ask for port 0)."""
        await self.relay.start()
        sockets = bind_sockets(self.settings.port, self.settings.host)
        self.port = sockets[0].getsockname()[1]
        self._server = HTTPServer(
            self.application(),
            max_body_size=MAX_BODY_BYTES,
            xheaders=self.settings.behind_proxy,
            ssl_options=self._ssl_context,
            idle_connection_timeout=self.settings.header_timeout,  # Tornado's header timeout too
            body_timeout=self.settings.body_timeout,
        )
        if self._ssl_context is None:
            self._upgrades = DirectUpgrades(self.relay, functools.partial(to_http_server, self._server))
            self._acceptor = PacedAcceptor(self._server, sockets, take=self._upgrades.take)
            self._acceptor.start()
        else:
            self._server.add_sockets(sockets)
        log.info("relay listening on http://%s:%d", self.settings.host, self.port)
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            if self._acceptor is not None:
                self._acceptor.stop()
                self._acceptor = None
            if self._upgrades is not None:
                await self._upgrades.close()
                self._upgrades = None
            self._server.stop()
            await self.relay.stop()
            await self._server.close_all_connections()
            self._server = None

    async def run_forever(self) -> None:
        """Serve until SIGINT (Ctrl-C) or SIGTERM, then shut down cleanly.

        Clients are closed with 1001 so they reconnect (to another node, or to
        this one when it is back) and their streams are written ``offline``.
        """
        await self.start()
        freeze_the_heap()
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signal_number, stopping.set)
        try:
            await stopping.wait()
            log.info("shutting down")
        finally:
            for signal_number in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signal_number)
            await self.stop()
