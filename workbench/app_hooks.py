"""Bokeh's hooks of the workbench app: the login, the relay's routes, the relay's life.

Bokeh executes this file while ``panel serve`` builds the application, before
Panel reads its configuration, so the login registered at import here becomes
the server's login; it may run more than once, and everything it does is
idempotent.  When the server is up, :func:`on_server_loaded` adds the relay's
``/api`` routes (unless ``--plugins workbench.plugin`` already did) and starts
the relay on the server's loop; :func:`on_server_unloaded` stops it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from workbench.server import runtime
from workbench.server.login import install_login
from workbench.server.notifications import repair_notification_area
from workbench.server.routes import RoutesNotInstalled, install_relay_routes

log = logging.getLogger("workbench")

install_login()
repair_notification_area()


def on_server_loaded(server_context: Any) -> None:
    _log_like_bokeh()
    try:
        added = install_relay_routes(server_context.application_context, runtime.relay().routes())
    except RoutesNotInstalled as error:
        log.critical("%s", error)
        asyncio.get_running_loop().stop()
        return
    log.info("relay routes %s", "added under /api" if added else "were already there (--plugins)")
    runtime.start()


def on_server_unloaded(_server_context: Any) -> None:
    runtime.stop()


def _log_like_bokeh() -> None:
    """Show the relay's and the workbench's log records at the level ``panel serve --log-level`` set for Bokeh."""
    level = logging.getLogger("bokeh").getEffectiveLevel()
    for name in ("relay", "workbench"):
        logging.getLogger(name).setLevel(level)
