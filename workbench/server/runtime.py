"""The one relay of a workbench process, shared by its routes, its hooks and every page.

``panel serve workbench`` runs the relay inside Panel's Tornado server: the same
port, the same IOLoop.  Bokeh executes the app's ``main.py`` and ``app_hooks.py``
under fresh module names, so nothing that must exist once may live there; it
lives here, in an ordinary module that every part imports by its absolute name.

The relay is built on first use from the ``RELAY_*`` environment variables (as
``relay serve`` reads them), without I/O, so that ``--plugins workbench.plugin``
can take its routes at import time; :func:`start` then opens its database and
broker on the running loop, and :func:`stop` closes them.
"""

from __future__ import annotations

import asyncio
import logging

from relay.app import Relay
from relay.config import Settings
from relay.tornado.server import freeze_the_heap
from workbench.server.cookie_auth import LoginCookieAuthenticator

log = logging.getLogger("workbench")

_relay: Relay | None = None
_starting: asyncio.Task[None] | None = None
_stopping: asyncio.Task[None] | None = None  # held so that the loop does not drop the shutdown task


def relay() -> Relay:
    """The process's relay, built from ``RELAY_*`` on first use and started by :func:`start`."""
    global _relay
    if _relay is None:
        node = _relay = Relay(Settings.from_env())
        node.authenticators.chain.append(LoginCookieAuthenticator(lambda: node.store))
    return _relay


def start() -> asyncio.Task[None]:
    """Start the relay on the running loop (once, however often this is called).

    A relay that cannot start (an unreachable database, a bad URL) leaves nothing
    useful to serve: the error is logged and the server's loop is stopped, so the
    command exits instead of answering every request with 503.
    """
    global _starting
    if _starting is None:
        _starting = asyncio.get_running_loop().create_task(_start(relay()))
    return _starting


async def _start(node: Relay) -> None:
    try:
        await node.start()
    except Exception:
        log.critical("the relay could not start; stopping the workbench", exc_info=True)
        asyncio.get_running_loop().stop()
        raise
    freeze_the_heap()  # Panel, Bokeh and the relay are all loaded by now


def stop() -> None:
    """Close the relay's connections, database and broker; safe to call when it never started.

    Bokeh calls the unload hook after its loop has stopped (Ctrl-C, SIGTERM), so
    the relay's asynchronous shutdown is run to completion here on that loop; on a
    loop that still runs, it is scheduled instead.
    """
    global _starting, _stopping
    node = _relay
    if node is None or _starting is None:
        return
    _starting = None
    loop = asyncio.get_event_loop()
    if loop.is_running():
        _stopping = loop.create_task(node.stop())
    else:
        loop.run_until_complete(node.stop())
