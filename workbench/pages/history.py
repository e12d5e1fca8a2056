"""The History page: the analyst's stored alerts, filtered, paged on the server, exportable.

Filters (severity, stream, time range, object type, text in the message) make a
:class:`~workbench.history_query.HistoryQuery`.  Only one page of rows is ever
read, with the query of ``GET /api/alerts`` (newest first, keyset paging on the
storage order, so pages do not shift while alerts arrive), plus a count of all
matches; the browser never holds more than that page.  Clicking a row shows the
alert's details; the export links download every matching alert as CSV or
Parquet from ``GET /api/alerts/export`` with the same filters.

While the page is on screen and showing its first page, new live alerts refresh
it, at most once every :data:`LIVE_REFRESH_SECONDS`.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time
from html import escape
from typing import Any, Final

import pandas as pd
import panel as pn

from relay.history.palette import SEVERITY_COLOURS
from relay.wire import SEVERITIES
from workbench.alerts import LiveAlert, format_time
from workbench.components.alert_detail import AlertDetail
from workbench.history_query import HistoryQuery
from workbench.session import AnalystSession

PAGE_SIZES: Final = (25, 50, 100)
LIVE_REFRESH_SECONDS: Final = 2.0
_TABLE_COLUMNS: Final = ["Stored (UTC)", "Stream", "Severity", "Message", "Object", "Confidence", "id"]


class HistoryPage:
    title = "History"

    def __init__(self, session: AnalystSession) -> None:
        self._session = session
        self._active = False
        self._rows: list[LiveAlert] = []
        self._pages: list[int | None] = [None]  # for each page visited: the storage position it starts before
        self._next_page: int | None = None
        self._generation = 0
        self._live_refresh: asyncio.Task[None] | None = None

        self.severity = pn.widgets.CheckButtonGroup(name="Severity", options=list(SEVERITIES), button_type="default")
        self.streams = pn.widgets.MultiChoice(name="Streams", placeholder="all streams", sizing_mode="stretch_width")
        self.since = pn.widgets.DatetimeInput(name="From (UTC)", value=None, width=170)
        self.until = pn.widgets.DatetimeInput(name="Until (UTC)", value=None, width=170)
        self.object_type = pn.widgets.TextInput(name="Object type", placeholder="e.g. person", width=140)
        self.text = pn.widgets.TextInput(name="Message contains", placeholder="search text", width=200)
        self.page_size = pn.widgets.Select(name="Rows", options=list(PAGE_SIZES), value=PAGE_SIZES[0], width=80)
        clear = pn.widgets.Button(name="Clear filters", button_type="light", align="end")
        clear.on_click(lambda _event: self._clear())
        self._newer = pn.widgets.Button(name="◀ Newer", disabled=True)
        self._older = pn.widgets.Button(name="Older ▶", disabled=True)
        self._newer.on_click(lambda _event: self._turn(-1))
        self._older.on_click(lambda _event: self._turn(+1))
        self.status = pn.pane.HTML("", css_classes=["history-status"], align="center")
        self.problem = pn.pane.Alert("", alert_type="warning", visible=False)
        self.exports = pn.pane.HTML("", css_classes=["history-exports"])
        self.table = pn.widgets.Tabulator(
            pd.DataFrame(columns=_TABLE_COLUMNS),
            disabled=True,
            show_index=False,
            selectable=False,
            hidden_columns=["id"],
            formatters={"Severity": {"type": "html"}},
            layout="fit_data_stretch",
            configuration={"renderVertical": "basic"},  # a page is at most 100 rows: render them all
            sizing_mode="stretch_width",
            css_classes=["history-table"],
        )
        self.table.on_click(self._clicked)
        self.detail = AlertDetail(session)

        self._clearing = False
        for widget in (self.severity, self.streams, self.since, self.until, self.object_type, self.text):
            widget.param.watch(self._filters_changed, "value")
        self.page_size.param.watch(lambda _event: self._restart(), "value")
        session.param.watch(lambda _event: self._show_stream_choices(), "streams")
        session.on_alert(self._alert_arrived)
        self._show_stream_choices()

        self.view = pn.Column(
            pn.Row(self.severity, self.streams, sizing_mode="stretch_width"),
            pn.Row(self.since, self.until, self.object_type, self.text, clear),
            self.problem,
            pn.Row(self._newer, self._older, self.page_size, self.status, self.exports, align="center"),
            self.table,
            self.detail.view,
            sizing_mode="stretch_width",
        )

    # ------------------------------------------------------------------ what is asked

    def query(self) -> HistoryQuery:
        return HistoryQuery(
            severities=tuple(self.severity.value),
            stream_ids=tuple(self.streams.value),
            since=_as_utc(self.since.value),
            until=_as_utc(self.until.value),
            object_type=self.object_type.value or "",
            text=self.text.value or "",
        )

    def _show_stream_choices(self) -> None:
        """Offer every stream by name; Bokeh's MultiChoice renders option labels as HTML, so they are escaped."""
        self.streams.options = {
            escape(self._session.label(stream_id)): stream_id for stream_id in self._session.stream_ids
        }

    def _filters_changed(self, _event: Any) -> None:
        if not self._clearing:
            self._restart()

    def _clear(self) -> None:
        self._clearing = True
        try:
            self.severity.value = []
            self.streams.value = []
            self.since.value = None
            self.until.value = None
            self.object_type.value = ""
            self.text.value = ""
        finally:
            self._clearing = False
        self._restart()

    # ------------------------------------------------------------------ paging

    def shown(self) -> None:
        self._active = True
        self._restart()

    def hidden(self) -> None:
        self._active = False

    def _restart(self) -> None:
        """Go back to the first page of what the filters now ask for."""
        self._pages = [None]
        pn.state.execute(self._read)

    def _turn(self, direction: int) -> None:
        if direction > 0 and self._next_page is not None:
            self._pages.append(self._next_page)
        elif direction < 0 and len(self._pages) > 1:
            self._pages.pop()
        pn.state.execute(self._read)

    async def _read(self) -> None:
        """Read the current page and the count of matches; only the newest request's answer is shown."""
        self._generation += 1
        generation = self._generation
        query = self.query()
        problem = query.problem()
        self.problem.object = problem or ""
        self.problem.visible = problem is not None
        if problem is not None:
            return
        self.exports.object = _export_links(query)
        size = self.page_size.value
        where = query.alert_filter(self._session.user_id)
        alerts = self._session.relay.store.alerts
        self.table.loading = True
        try:
            rows = await alerts.page(where, limit=size + 1, before_seq=self._pages[-1])
            total = await alerts.count(where)
        finally:
            if generation == self._generation:
                self.table.loading = False
        if generation != self._generation:
            return
        page = rows[:size]
        self._next_page = page[-1].seq if len(rows) > size else None
        self._rows = [LiveAlert.from_row(row) for row in page]
        self.table.value = self._frame(self._rows)
        first = (len(self._pages) - 1) * size
        self.status.object = f"alerts {first + 1}–{first + len(page)} of {total}" if page else "no alerts match"
        self._newer.disabled = len(self._pages) == 1
        self._older.disabled = self._next_page is None

    def _frame(self, alerts: list[LiveAlert]) -> pd.DataFrame:
        return pd.DataFrame(
            [
                [
                    format_time(alert.created_at).removesuffix(" UTC"),
                    self._session.label(alert.stream_id),
                    _severity_cell(alert.severity),
                    alert.message,
                    alert.object_type or "",
                    alert.confidence,
                    alert.id,
                ]
                for alert in alerts
            ],
            columns=_TABLE_COLUMNS,
        )

    def _clicked(self, event: Any) -> None:
        if 0 <= event.row < len(self._rows):
            self.detail.show(self._rows[event.row])

    # ------------------------------------------------------------------ live

    def _alert_arrived(self, _alert: LiveAlert) -> None:
        if not self._active or len(self._pages) > 1 or self._live_refresh is not None:
            return

        async def refresh_soon() -> None:
            try:
                await asyncio.sleep(LIVE_REFRESH_SECONDS)
                if self._active and len(self._pages) == 1:
                    await self._read()
            finally:
                self._live_refresh = None

        self._live_refresh = asyncio.get_running_loop().create_task(refresh_soon())


def _as_utc(moment: date | None) -> datetime | None:
    """The inputs' naive times are UTC, as the page says; a bare date is its midnight."""
    if moment is None:
        return None
    if not isinstance(moment, datetime):
        moment = datetime.combine(moment, time())
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _severity_cell(severity: str) -> str:
    return (
        f"<span style='color:{SEVERITY_COLOURS[severity]};font-weight:700'>●</span> {escape(severity)}"
        if severity in SEVERITY_COLOURS
        else escape(severity)
    )


def _export_links(query: HistoryQuery) -> str:
    links = " ".join(
        f"<a class='export-{format}' href='{escape(query.export_url(format))}' download>{label}</a>"
        for format, label in (("csv", "⬇ CSV"), ("parquet", "⬇ Parquet"))
    )
    return f"Export these alerts: {links}"
