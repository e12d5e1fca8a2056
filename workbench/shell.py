"""The workbench in one browser tab: the template, its navigation, and what all pages share.

One Panel template holds the five pages (Live, Timeline, History, Analytics, Streams; the page on
screen is kept in the URL as ``?page=``, the others are hidden) and, in its
header, what belongs on every page: the count of unreviewed alerts, the analyst's
name with a logout link, and the invisible alert feed whose alerts become
toasts, timeline points and history refreshes.  The pages are built once the tab's analyst is known (the store is
asynchronous, so that happens on load) and live as long as the tab.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from html import escape
from typing import Final, cast

import panel as pn

from workbench.components.alert_feed import AlertFeed
from workbench.pages.analytics import AnalyticsPage
from workbench.pages.history import HistoryPage
from workbench.pages.live import LivePage
from workbench.pages.page import Page
from workbench.pages.streams import StreamsPage
from workbench.pages.timeline import TimelinePage
from workbench.server import runtime
from workbench.session import STREAM_REFRESH_SECONDS, AnalystSession
from workbench.widgets.alert_toasts import AlertToasts
from workbench.widgets.unreviewed_counter import UnreviewedCounter

log = logging.getLogger("workbench")

TITLE: Final = "Vigil workbench"
LOGOUT_PATH: Final = "/logout"


class Workbench:
    """Built for each new tab (by ``main.py``); :attr:`template` is what the tab shows."""

    def __init__(self) -> None:
        self._username: str | None = pn.state.user
        self._toasts = AlertToasts(pn.state.notifications)
        self._pages: dict[str, Page] = {}
        self._content = pn.Column(
            pn.indicators.LoadingSpinner(value=True, size=48, name="Loading your streams…"),
            sizing_mode="stretch_width",
        )
        self.navigation = pn.widgets.RadioButtonGroup(
            options=["Live", "Timeline", "History", "Analytics", "Streams"],
            value="Live",
            orientation="vertical",
            button_type="primary",
            button_style="outline",
            sizing_mode="stretch_width",
        )
        self._header = pn.Row(align="center", sizing_mode="stretch_width")
        self.template = pn.template.FastListTemplate(
            title=TITLE,
            sidebar=[self.navigation],
            main=[self._content],
            header=[self._header],
            sidebar_width=180,
            theme_toggle=False,
        )
        if pn.state.location is not None:
            pn.state.location.sync(self.navigation, {"value": "page"})
        pn.state.onload(self._open)

    async def _open(self) -> None:
        node = runtime.relay()
        if not node.ready:
            self._content.objects = [pn.pane.Alert("The workbench is starting; reload in a moment.", alert_type="info")]
            return
        session = await AnalystSession.open(node, self._username or "")
        if session is None:
            gone = f"There is no user {self._username!r} any more. [Log out]({LOGOUT_PATH})"
            self._content.objects = [pn.pane.Alert(gone, alert_type="danger")]
            return
        self._toasts.follow(session)
        feed = AlertFeed(
            on_alert=session.receive,
            on_subscribed=session.subscription_started,
            on_update=session.receive_update,
            stream_ids=session.stream_ids,
        )
        session.param.watch(lambda _event: setattr(feed, "stream_ids", session.stream_ids), "streams")
        history = HistoryPage(session)

        def open_history(stream_id: str, since: datetime, until: datetime) -> None:
            """From an unusual hour on Analytics to its alerts in History."""
            history.param.update(
                stream_ids=[stream_id], since=since, until=until, severities=[], object_type="", text=""
            )
            self.navigation.value = history.title

        def open_unreviewed() -> None:
            """From the header's counter to the unreviewed alerts in History."""
            history.show_unreviewed()
            self.navigation.value = history.title

        pages: list[Page] = [
            *(LivePage(session), TimelinePage(session), history, AnalyticsPage(session, open_history)),
            StreamsPage(session),
        ]
        self._pages = {page.title: page for page in pages}
        self._header.objects = [
            pn.layout.HSpacer(),
            UnreviewedCounter(session, open_unreviewed),
            pn.pane.HTML(
                f"<span class='analyst'>{escape(session.username)}</span> · "
                f"<a class='logout' href='{LOGOUT_PATH}' style='color:inherit'>Log out</a>",
                styles={"color": "white"},
                align="center",
            ),
            feed,
            history.shortcuts,
        ]
        self._content.objects = pages
        self.navigation.param.watch(self._show, "value")
        self._show()
        refresh = cast(Callable[[], None], session.refresh_streams)  # Panel awaits coroutine callbacks
        pn.state.add_periodic_callback(refresh, period=int(STREAM_REFRESH_SECONDS * 1000))
        log.info("tab opened for %s with %d streams", session.username, len(session.streams))

    def _show(self, _event: object = None) -> None:
        """Put the page the navigation names on screen, after taking the others off.

        Every page stays in the document, hidden or not: a Bokeh plot taken out
        of the document and put back can miss the updates sent meanwhile.  Pages
        join the document visible and are hidden here, in the same callback: a
        Bokeh plot first laid out while hidden settles its layout (the toolbar
        above it) only a while after it is shown, and clicks meanwhile miss.
        """
        for title, page in self._pages.items():
            if title != self.navigation.value:
                page.__panel__().visible = False
                page.on_screen = False
        page = self._pages[self.navigation.value]
        page.__panel__().visible = True
        page.on_screen = True
