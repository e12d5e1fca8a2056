"""How a page's Python session hears of its analyst's alerts as they happen.

:class:`AlertFeed` is an invisible browser-side component: its JavaScript
(``alert_feed.js``) holds one WebSocket to the relay, authenticated by the page's
login cookie, subscribed to the alerts of the streams in :attr:`stream_ids`, and
sends each alert, and each review change (``alert-updated``), to this Python
object.  The relay decides what the browser may see, so the feed is per user by
construction; what comes back from the browser is
still checked (:func:`workbench.alerts.LiveAlert.from_message`) and limited to the
session's own streams before anyone hears of it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import param
from panel.custom import JSComponent

from workbench.alerts import LiveAlert, ReviewUpdate
from workbench.components.scripts import module

log = logging.getLogger("workbench.feed")


class AlertFeed(JSComponent):
    """Live alerts of :attr:`stream_ids`, delivered to ``on_alert``; their review changes to
    ``on_update``; ``on_subscribed`` per stream."""

    stream_ids = param.List(item_type=str, doc="The streams whose alerts to receive.")

    _esm = module("relay_socket.js", "alert_feed.js")

    def __init__(
        self,
        on_alert: Callable[[LiveAlert], None],
        on_subscribed: Callable[[str], None],
        on_update: Callable[[ReviewUpdate], None],
        **params: Any,
    ) -> None:
        super().__init__(visible=False, **params)  # type: ignore[no-untyped-call]
        self._on_alert = on_alert
        self._on_subscribed = on_subscribed
        self._on_update = on_update

    def _handle_msg(self, data: Any) -> None:
        if not isinstance(data, dict):
            return
        kind = data.get("kind")
        if kind == "subscribed" and data.get("streamId") in self.stream_ids:
            self._on_subscribed(data["streamId"])
        elif kind == "alert":
            try:
                alert = LiveAlert.from_message(data.get("alert"))
            except ValueError as error:
                log.warning("ignored an alert from the browser: %s", error)
                return
            if alert.stream_id in self.stream_ids:
                self._on_alert(alert)
        elif kind == "updated":
            try:
                update = ReviewUpdate.from_message(data.get("update"))
            except ValueError as error:
                log.warning("ignored a review change from the browser: %s", error)
                return
            if update.stream_id in self.stream_ids:
                self._on_update(update)
