"""A toast for every live alert of the analyst's streams, coloured by severity.

Toasts use Panel's notification area (Notyf), which every page of the template
shares, so they appear whichever page the analyst is on.  ``critical`` toasts
stay until dismissed; the others fade after a while that grows with severity.
Alert text is the ML service's, so it is escaped before Notyf renders it as HTML.

At most :data:`MAX_VISIBLE` alert toasts are on screen: a burst of alerts would
otherwise bury the page.  A new alert takes the place of the oldest toast, and
the toasts taken away are counted in one "+N more" toast (until dismissed), the
unseen counter and History having them all.  An alert the relay stored a frame
with shows that frame: an ``<img>`` of ``/api/alerts/{id}/snapshot``, which the
browser asks for with the workbench's login cookie, as the tiles' WebSocket does
(:mod:`workbench.server.cookie_auth`: a ``GET`` with the cookie is the analyst's),
so no token is put into the page.

Notyf learns the severities' styles when the notification area first renders, so
:class:`AlertToasts` must be made while the tab is being built, before it knows
its analyst; :meth:`AlertToasts.follow` then attaches it to the session.

Unlike its neighbours it is not a :class:`~panel.viewable.Viewer`: it has nothing of
its own to lay out, its toasts appear in the notification area the template
already renders.
"""

from __future__ import annotations

from html import escape
from typing import Any, Final

from relay.history.palette import SEVERITY_COLOURS
from workbench.alerts import LiveAlert
from workbench.session import AnalystSession

DURATIONS_MS: Final = {"low": 5_000, "medium": 8_000, "high": 12_000, "critical": 0}
"""How long each severity's toast stays; 0 is until dismissed."""

MAX_VISIBLE: Final = 3
"""Alert toasts on screen at once; the others are counted in the "+N more" toast."""

MORE: Final = "more"
"""The notification type of the "+N more" toast."""

SNAPSHOT_PATH: Final = "/api/alerts/{id}/snapshot"


class AlertToasts:
    def __init__(self, notifications: Any) -> None:
        """``notifications`` is the tab's ``pn.state.notifications``, before the page renders."""
        self._notifications = notifications
        self._shown: list[Any] = []
        """The alert toasts put on screen, oldest first (some may have faded or been dismissed since)."""
        self._more: Any = None
        self._hidden = 0
        notifications.types = [
            *notifications.types,
            *(
                {
                    "type": severity,
                    "background": colour,
                    "icon": False,
                    "dismissible": True,
                    "className": f"vigil-toast vigil-toast-{severity}",
                }
                for severity, colour in SEVERITY_COLOURS.items()
            ),
            {
                "type": MORE,
                "background": "#455a64",
                "icon": False,
                "dismissible": True,
                "className": "vigil-toast-more",
            },
        ]

    def follow(self, session: AnalystSession) -> None:
        """Toast every live alert of ``session``."""
        session.param.watch(lambda event: self.show(event.new, session.label(event.new.stream_id)), "latest_alert")

    def show(self, alert: LiveAlert, stream_label: str) -> None:
        on_screen = self._notifications.notifications  # Panel drops a toast from it when it fades or is dismissed
        self._shown = [toast for toast in self._shown if toast in on_screen]
        if self._more not in on_screen:
            self._more, self._hidden = None, 0  # dismissed: the analyst has seen the count
        if len(self._shown) >= MAX_VISIBLE:
            for toast in self._shown[: len(self._shown) - MAX_VISIBLE + 1]:
                toast.destroy()
                self._hidden += 1
            self._shown = self._shown[len(self._shown) - MAX_VISIBLE + 1 :]
            self._count_hidden()
        self._shown.append(
            self._notifications.send(
                _toast_html(alert, stream_label), duration=DURATIONS_MS[alert.severity], type=alert.severity
            )
        )

    def _count_hidden(self) -> None:
        """The "+N more" toast, sent again with the new count (a toast's text cannot change)."""
        if self._more is not None:
            self._more.destroy()
        more = f"+{self._hidden} more alert{'s' if self._hidden != 1 else ''} (see History)"
        self._more = self._notifications.send(more, duration=0, type=MORE)


def _toast_html(alert: LiveAlert, stream_label: str) -> str:
    text = f"<b>{escape(alert.severity.upper())}</b> · {escape(stream_label)}<br>{escape(alert.message)}"
    if not alert.has_snapshot:
        return text
    source = SNAPSHOT_PATH.format(id=alert.id)  # an id is URL-safe (LiveAlert checks it)
    picture = (
        f"<img class='vigil-toast-snapshot' src='{source}' alt='the frame of this alert' "
        "style='display:block;max-width:160px;max-height:120px;margin-bottom:4px;border-radius:3px'>"
    )
    return picture + text
