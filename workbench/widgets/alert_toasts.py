"""A toast for every live alert of the analyst's streams, coloured by severity.

Toasts use Panel's notification area (Notyf), which every page of the template
shares, so they appear whichever page the analyst is on.  ``critical`` toasts
stay until dismissed; the others fade after a while that grows with severity.
Alert text is the ML service's, so it is escaped before Notyf renders it as HTML.

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


class AlertToasts:
    def __init__(self, notifications: Any) -> None:
        """``notifications`` is the tab's ``pn.state.notifications``, before the page renders."""
        self._notifications = notifications
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
        ]

    def follow(self, session: AnalystSession) -> None:
        """Toast every live alert of ``session``."""
        session.param.watch(lambda event: self.show(event.new, session.label(event.new.stream_id)), "latest_alert")

    def show(self, alert: LiveAlert, stream_label: str) -> None:
        text = f"<b>{escape(alert.severity.upper())}</b> · {escape(stream_label)}<br>{escape(alert.message)}"
        self._notifications.send(text, duration=DURATIONS_MS[alert.severity], type=alert.severity)
