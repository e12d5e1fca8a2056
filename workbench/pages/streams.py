"""The Streams page: the analyst's streams, renamed or deleted.

A stream registered by mistake, or a phone retired, would otherwise stay an
OFFLINE tile for ever.  Here the analyst picks a stream, gives it a new name
(checked as ``PATCH /api/streams/{id}`` checks it) or deletes it after saying so
twice: the relay deletes it with its alerts and snapshots and tells every node,
whose clients of that stream receive ``stream-deleted`` (as ``DELETE
/api/streams/{id}`` does).  Every page follows the session's list of streams,
which is read again at once after either change.
"""

from __future__ import annotations

from html import escape
from typing import Any, Literal

import panel as pn
import param

from relay.rest.base import ApiError
from relay.rest.streams import device_name_of
from relay.store import AlertFilter
from workbench.pages.page import Page
from workbench.session import AnalystSession


class StreamsPage(Page):
    """A list of the analyst's streams; rename the chosen one, or delete it after a confirmation."""

    title = "Streams"

    chosen: param.Selector[str | None] = param.Selector(
        default=None, objects=[], allow_None=True, label="Stream", doc="The stream to change."
    )

    def __init__(self, session: AnalystSession, **params: Any) -> None:
        super().__init__(session, **params)
        self.listing = pn.pane.HTML("", css_classes=["streams-list"], sizing_mode="stretch_width")
        choice = pn.widgets.Select.from_param(self.param.chosen, width=260)
        self.new_name = pn.widgets.TextInput(name="New name", width=260, css_classes=["stream-new-name"])
        self.rename = pn.widgets.Button(name="Rename", button_type="primary", align="end", css_classes=["rename"])
        self.delete = pn.widgets.Button(name="Delete…", button_type="danger", align="end", css_classes=["delete"])
        self.confirm = pn.widgets.Button(name="Delete for good", button_type="danger", css_classes=["confirm-delete"])
        self.cancel = pn.widgets.Button(name="Cancel", css_classes=["cancel-delete"])
        self.question = pn.pane.HTML("", css_classes=["delete-question"])
        self.confirmation = pn.Row(self.question, self.confirm, self.cancel, visible=False)
        self.message = pn.pane.Alert("", alert_type="info", visible=False, css_classes=["streams-message"])
        self.rename.on_click(lambda _event: pn.state.execute(self._rename))
        self.delete.on_click(lambda _event: pn.state.execute(self._ask))
        self.confirm.on_click(lambda _event: pn.state.execute(self._delete))
        self.cancel.on_click(lambda _event: setattr(self.confirmation, "visible", False))
        session.param.watch(lambda _event: self._show_streams(), "streams")
        self._show_streams()
        self._page = pn.Column(
            self.listing,
            pn.Row(choice, self.new_name, self.rename, self.delete),
            self.confirmation,
            self.message,
            sizing_mode="stretch_width",
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self._page

    def _show_streams(self) -> None:
        streams = self._session.streams
        self.param.chosen.objects = {escape(self._session.label(stream.id)): stream.id for stream in streams}
        if self.chosen not in [stream.id for stream in streams]:
            self.chosen = streams[0].id if streams else None
        rows = "".join(
            f"<tr data-stream-id='{escape(stream.id)}'><td>{escape(stream.device_name)}</td>"
            f"<td><code>{escape(stream.id)}</code></td></tr>"
            for stream in streams
        )
        self.listing.object = (
            f"<table class='streams-table'><tr><th>Name</th><th>Stream id</th></tr>{rows}</table>"
            if streams
            else "<p>No streams yet: a phone registers one (POST /api/streams/register).</p>"
        )

    @param.depends("chosen", watch=True)
    def _chosen_changed(self) -> None:
        self.confirmation.visible = False
        self.new_name.value = ""

    def _say(self, text: str, kind: Literal["info", "success", "warning"] = "info") -> None:
        self.message.object = text
        self.message.alert_type = kind
        self.message.visible = True

    async def _rename(self) -> None:
        if self.chosen is None:
            return
        try:
            name = device_name_of(self.new_name.value)
        except ApiError as error:
            self._say(error.message, "warning")
            return
        stream = await self._session.relay.store.streams.update(self.chosen, self._session.user_id, device_name=name)
        if stream is None:
            self._say("That stream is gone.", "warning")
        else:
            self._say(f"Renamed to {name}.", "success")
        self.new_name.value = ""
        await self._session.refresh_streams()

    async def _ask(self) -> None:
        if self.chosen is None:
            return
        where = AlertFilter(user_id=self._session.user_id, stream_ids=(self.chosen,))
        alerts = await self._session.relay.store.alerts.count(where)
        name = self._session.label(self.chosen)
        self.question.object = (
            f"Delete <b>{escape(name)}</b> with its {alerts:,} alert{'' if alerts == 1 else 's'} and their "
            "snapshots? Its phone is told and can no longer send to it."
        )
        self.confirmation.visible = True

    async def _delete(self) -> None:
        self.confirmation.visible = False
        stream_id = self.chosen
        if stream_id is None:
            return
        name = self._session.label(stream_id)
        deleted = await self._session.relay.delete_stream(stream_id, self._session.user_id)
        self._say(f"Deleted {name}." if deleted else "That stream was already gone.", "success")
        await self._session.refresh_streams()
