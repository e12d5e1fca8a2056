"""Where the relay is meant to grow: callbacks on what it did, for webhooks, push notifications, mirrors.

One hook so far, :meth:`Hooks.on_alert_stored`: called once for every alert the
relay stores (never again for a resent copy that is only confirmed again), after
it is committed and sent on, with the alert as ``GET /api/alerts`` shows it.  A
callback is a plain function or a coroutine function; a coroutine runs as a task
of its own, so a slow webhook never delays a client, and a callback that raises
is logged and changes nothing for the client or the other callbacks.

Register callbacks on the node before it starts (``relay.hooks.on_alert_stored(f)``);
``docs/ARCHITECTURE.md`` shows where they sit on the alert's path.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("relay.hooks")

AlertStored = Callable[[dict[str, Any]], Awaitable[None] | None]
"""``callback(alert)``: ``alert`` as the REST API shows it (``id``, ``streamId``, ``severity``, …)."""


class Hooks:
    """The callbacks of one relay node; see the module docstring."""

    def __init__(self) -> None:
        self._alert_stored: list[AlertStored] = []
        self._running: set[asyncio.Task[None]] = set()

    def on_alert_stored(self, callback: AlertStored) -> None:
        """Call ``callback`` for every alert stored from now on."""
        self._alert_stored.append(callback)

    def alert_stored(self, alert: dict[str, Any]) -> None:
        """Tell every callback about a newly stored alert (the router calls this)."""
        for callback in self._alert_stored:
            try:
                result = callback(alert)
            except Exception:
                log.exception("alert_stored hook %r failed on %s", callback, alert.get("id"))
                continue
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(self._guard(callback, result, alert.get("id")))
                self._running.add(task)
                task.add_done_callback(self._running.discard)

    async def _guard(self, callback: AlertStored, running: Awaitable[None], alert_id: object) -> None:
        try:
            await running
        except Exception:
            log.exception("alert_stored hook %r failed on %s", callback, alert_id)
