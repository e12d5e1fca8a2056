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
import param
from param.parameterized import Event

from relay.history.palette import SEVERITY_COLOURS
from relay.wire import SEVERITIES
from workbench.alerts import LiveAlert, format_time
from workbench.history_query import HistoryQuery
from workbench.pages.page import Page
from workbench.session import AnalystSession
from workbench.widgets.alert_detail import AlertDetail

PAGE_SIZES: Final = (25, 50, 100)
LIVE_REFRESH_SECONDS: Final = 2.0
_TABLE_COLUMNS: Final = ["Stored (UTC)", "Stream", "Severity", "Message", "Object", "Confidence", "id"]


class HistoryPage(Page):
    """One page of the alerts the filters ask for, the newest first; its detail; its export."""

    title = "History"

    severities = param.ListSelector(
        default=[], objects=list(SEVERITIES), label="Severity", doc="Only these severities; none chosen: all."
    )
    stream_ids = param.ListSelector(
        default=[], objects=[], label="Streams", doc="Only these streams (offered by name); none chosen: all."
    )
    since = param.Date(default=None, label="From (UTC)", doc="Only alerts stored from then on.")
    until = param.Date(default=None, label="Until (UTC)", doc="Only alerts stored before then.")
    object_type = param.String(default="", label="Object type", doc="Only alerts of this object type.")
    text = param.String(default="", label="Message contains", doc="Only alerts whose message contains this.")
    page_size: param.Selector[int] = param.Selector(
        objects=list(PAGE_SIZES), default=PAGE_SIZES[0], label="Rows", doc="Alerts per page."
    )
    page_starts = param.List[int | None](
        default=[None],
        doc="For each page visited since the filters last changed, the storage position its alerts come "
        "before (None: the newest); the last is the page shown.",
    )

    def __init__(self, session: AnalystSession, **params: Any) -> None:
        super().__init__(session, **params)
        self._rows: list[LiveAlert] = []
        self._next_page: int | None = None
        self._generation = 0
        self._live_refresh: asyncio.Task[None] | None = None
        self._offer_streams()

        severity = pn.widgets.CheckButtonGroup.from_param(self.param.severities, button_type="default")
        streams = pn.widgets.MultiChoice.from_param(
            self.param.stream_ids, placeholder="all streams", sizing_mode="stretch_width"
        )
        since = pn.widgets.DatetimeInput.from_param(self.param.since, width=170)
        until = pn.widgets.DatetimeInput.from_param(self.param.until, width=170)
        object_type = pn.widgets.TextInput.from_param(self.param.object_type, placeholder="e.g. person", width=140)
        text = pn.widgets.TextInput.from_param(self.param.text, placeholder="search text", width=200)
        page_size = pn.widgets.Select.from_param(self.param.page_size, width=80)
        clear = pn.widgets.Button(name="Clear filters", button_type="light", align="end")
        clear.on_click(lambda _event: self._clear_filters())
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
        session.param.watch(lambda _event: self._offer_streams(), "streams")
        session.param.watch(self._alert_arrived, "latest_alert")

        self._page = pn.Column(
            pn.Row(severity, streams, sizing_mode="stretch_width"),
            pn.Row(since, until, object_type, text, clear),
            self.problem,
            pn.Row(self._newer, self._older, page_size, self.status, self.exports, align="center"),
            self.table,
            self.detail,
            sizing_mode="stretch_width",
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self._page

    # ------------------------------------------------------------------ what is asked

    def query(self) -> HistoryQuery:
        return HistoryQuery(
            severities=tuple(self.severities),
            stream_ids=tuple(self.stream_ids),
            since=as_utc(self.since),
            until=as_utc(self.until),
            object_type=self.object_type,
            text=self.text,
        )

    def _clear_filters(self) -> None:
        """Every filter back to "all" in one update, so the first page is read once."""
        self.param.update(severities=[], stream_ids=[], since=None, until=None, object_type="", text="")

    def _offer_streams(self) -> None:
        """Offer every stream by name; Bokeh's MultiChoice renders option labels as HTML, so they are escaped."""
        self.param.stream_ids.objects = {
            escape(self._session.label(stream_id)): stream_id for stream_id in self._session.stream_ids
        }

    # ------------------------------------------------------------------ paging

    @param.depends("on_screen", watch=True)
    def _refresh_when_shown(self) -> None:
        if self.on_screen:
            self._restart()

    @param.depends("severities", "stream_ids", "since", "until", "object_type", "text", "page_size", watch=True)
    def _restart(self) -> None:
        """Go back to the first page of what the filters now ask for."""
        self.page_starts = [None]
        pn.state.execute(self._read)

    def _turn(self, direction: int) -> None:
        if direction > 0 and self._next_page is not None:
            self.page_starts = [*self.page_starts, self._next_page]
        elif direction < 0 and len(self.page_starts) > 1:
            self.page_starts = self.page_starts[:-1]
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
        size = self.page_size
        where = query.alert_filter(self._session.user_id)
        alerts = self._session.relay.store.alerts
        self.table.loading = True
        try:
            rows = await alerts.page(where, limit=size + 1, before_seq=self.page_starts[-1])
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
        first = (len(self.page_starts) - 1) * size
        self.status.object = f"alerts {first + 1}–{first + len(page)} of {total}" if page else "no alerts match"
        self._newer.disabled = len(self.page_starts) == 1
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
            self.detail.alert = self._rows[event.row]

    # ------------------------------------------------------------------ live

    def _alert_arrived(self, _event: Event) -> None:
        if not self.on_screen or len(self.page_starts) > 1 or self._live_refresh is not None:
            return

        async def refresh_soon() -> None:
            try:
                await asyncio.sleep(LIVE_REFRESH_SECONDS)
                if self.on_screen and len(self.page_starts) == 1:
                    await self._read()
            finally:
                self._live_refresh = None

        self._live_refresh = asyncio.get_running_loop().create_task(refresh_soon())


def as_utc(moment: date | None) -> datetime | None:
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
    report = f"<a class='report-link' href='{escape(query.report_url())}' download>⬇ Report</a>"
    return f"Export these alerts: {links} · {report}"
