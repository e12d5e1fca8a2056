"""The Analytics page: the named DuckDB queries over the analyst's history, drawn, for a date range and streams.

The charts are :mod:`relay.history.charts` drawing the answers of
:meth:`relay.history.service.History.query` — what ``GET /api/analytics/{name}``
answers and the report draws — over the relay's analytics copy, which this page
brings up to date when it is shown (if the node stored alerts since, or it is
older than :data:`STALE_AFTER`) and with its Refresh button.  The unusual hours are marked on the chart over time and
listed below it; clicking one (mark or row) opens the History page filtered to
that stream and hour.  The Report link downloads the report of the same filter.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from html import escape
from typing import Any, Final

import pandas as pd
import panel as pn
import param
from bokeh.layouts import column
from bokeh.models import ColumnDataSource

from relay.clock import utcnow
from relay.history import charts
from relay.history.analytics import QUERIES, Answer
from workbench.history_query import HistoryQuery
from workbench.pages.history import as_utc
from workbench.pages.page import Page
from workbench.session import AnalystSession

STALE_AFTER: Final = timedelta(seconds=60)
"""A copy older than this (alerts may have come through other nodes) is brought up to date before the
page reads it; so is one that lacks alerts this node stored."""
_UNUSUAL_TYPES: Final = {
    "Hour (UTC)": "str",
    "Stream": "str",
    "Alerts": "int64",
    "Usual": "float64",
    "Threshold": "float64",
    "streamId": "str",
    "hour": "str",
}
"""The unusual hours' columns, typed from the start: rows arriving in an untyped empty table change the
Tabulator's configuration (number sorters), and Panel's TabulatorView then destroys and builds the table anew."""

OpenHistory = Callable[[str, datetime, datetime], None]
"""Show the History page for a stream and a time range (naive UTC times, as the page's inputs hold)."""


class AnalyticsPage(Page):
    """The charts of the analyst's alerts for the chosen range and streams, and the unusual hours."""

    title = "Analytics"

    since = param.Date(default=None, label="From (UTC)", doc="Only alerts stored from then on.")
    until = param.Date(default=None, label="Until (UTC)", doc="Only alerts stored before then.")
    stream_ids = param.ListSelector(
        default=[], objects=[], label="Streams", doc="Only these streams (offered by name); none chosen: all."
    )

    def __init__(self, session: AnalystSession, open_history: OpenHistory, **params: Any) -> None:
        super().__init__(session, **params)
        self._open_history = open_history
        self._generation = 0
        self._unusual_rows = pd.DataFrame(columns=list(_UNUSUAL_TYPES)).astype(_UNUSUAL_TYPES)
        self._offer_streams()
        session.param.watch(lambda _event: self._offer_streams(), "streams")

        since = pn.widgets.DatetimeInput.from_param(self.param.since, width=170)
        until = pn.widgets.DatetimeInput.from_param(self.param.until, width=170)
        streams = pn.widgets.MultiChoice.from_param(
            self.param.stream_ids, placeholder="all streams", sizing_mode="stretch_width"
        )
        last_week = pn.widgets.Button(name="Last 7 days", button_type="light", align="end")
        last_week.on_click(lambda _event: self._last_days(7))
        refresh = pn.widgets.Button(name="Refresh", button_type="primary", align="end")
        refresh.on_click(lambda _event: pn.state.execute(self._refresh_now))
        self.status = pn.pane.HTML("", css_classes=["analytics-status"], align="center")
        self.problem = pn.pane.Alert("", alert_type="warning", visible=False)
        self.report = pn.pane.HTML("", css_classes=["analytics-report"], align="center")
        self.over_time = pn.pane.Bokeh(sizing_mode="stretch_width")
        self.summaries = pn.pane.Bokeh(sizing_mode="stretch_width")
        """The other five charts as one Bokeh layout in one pane: every pane whose object changes makes Panel
        walk every model of the tab again (its links' preprocessing, the theme), so five panes cost five walks."""
        self.unusual = pn.widgets.Tabulator(
            self._unusual_rows,
            disabled=True,
            show_index=False,
            selectable=False,
            hidden_columns=["streamId", "hour"],
            layout="fit_data_stretch",
            sizing_mode="stretch_width",
            css_classes=["unusual-hours"],
        )
        self.unusual.on_click(self._unusual_clicked)
        # The chart panes sit in columns of their own: a pane whose figure is replaced changes its parent's
        # children, and BokehJS then renders every child of that parent again; the Tabulator among them
        # redrew itself in full each time (~200 ms of the browser's ~1 s after the charts arrived).
        self._page = pn.Column(
            pn.Row(since, until, last_week, streams, refresh, sizing_mode="stretch_width"),
            self.problem,
            pn.Row(self.status, self.report, align="center"),
            pn.Column(self.over_time, sizing_mode="stretch_width"),
            pn.pane.Markdown(
                "**Unusual hours**: a stream raised more alerts than the mean plus three standard deviations of its "
                "own counts at that hour of day. Click one (here or its ▼ above) to see its alerts in History."
            ),
            self.unusual,
            pn.Column(self.summaries, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
            css_classes=["analytics-page"],
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self._page

    def query(self) -> HistoryQuery:
        return HistoryQuery(stream_ids=tuple(self.stream_ids), since=as_utc(self.since), until=as_utc(self.until))

    def _offer_streams(self) -> None:
        self.param.stream_ids.objects = {
            escape(self._session.label(stream_id)): stream_id for stream_id in self._session.stream_ids
        }

    def _last_days(self, days: int) -> None:
        start = (utcnow() - timedelta(days=days)).replace(tzinfo=None, minute=0, second=0, microsecond=0)
        self.param.update(since=start, until=None)

    # ------------------------------------------------------------------ reading

    @param.depends("on_screen", watch=True)
    def _shown(self) -> None:
        if self.on_screen:
            pn.state.execute(self._refresh_and_read)

    @param.depends("since", "until", "stream_ids", watch=True)
    def _filters_changed(self) -> None:
        pn.state.execute(self._read)

    async def _refresh_and_read(self) -> None:
        history = self._session.relay.history
        refreshed = history.refreshed_at
        if history.behind or refreshed is None or utcnow() - refreshed > STALE_AFTER:
            await self._refresh_now()
        else:
            await self._read()

    async def _refresh_now(self) -> None:
        self.status.object = "Bringing the analytics copy up to date…"
        await self._session.relay.history.refresh()
        await self._read()

    async def _read(self) -> None:
        """Ask every query for the current filter; only the newest request's answers are drawn."""
        self._generation += 1
        generation = self._generation
        query = self.query()
        problem = query.problem()
        self.problem.object = problem or ""
        self.problem.visible = problem is not None
        if problem is not None:
            return
        where = query.alert_filter(self._session.user_id)
        history = self._session.relay.history
        answers = {name: await history.query(name, where) for name in QUERIES}
        if generation != self._generation:
            return
        # One update of the document for all six charts: each pane's change alone makes Bokeh walk
        # every model of the tab (most of the page's time at a month of alerts, by py-spy).
        with pn.io.hold(freeze=True):
            self._draw(answers, query)

    def _draw(self, answers: dict[str, Answer], query: HistoryQuery) -> None:
        names = {stream.id: self._session.label(stream.id) for stream in self._session.streams}
        over_time, marks = charts.alerts_over_time(answers["alerts-per-hour"], answers["unusual-hours"], names)
        marks.selected.on_change("indices", lambda _attribute, _old, indices: self._mark_tapped(marks, indices))
        self.over_time.object = over_time
        self.summaries.object = column(*charts.summaries(answers, names), sizing_mode="stretch_width")
        unusual = answers["unusual-hours"].frame()
        rows = pd.DataFrame(
            {
                "Hour (UTC)": [str(hour)[:16].replace("T", " ") for hour in unusual["hour"]],
                "Stream": [charts.label(names, str(stream)) for stream in unusual["streamId"]],
                "Alerts": unusual["alerts"],
                "Usual": unusual["expected"],
                "Threshold": unusual["threshold"],
                "streamId": unusual["streamId"],
                "hour": unusual["hour"],
            },
            columns=list(_UNUSUAL_TYPES),
        ).astype(_UNUSUAL_TYPES)
        if not rows.equals(self._unusual_rows):  # the same rows again (a refresh): the table stays as drawn
            self._unusual_rows = rows
            self.unusual.value = rows
        total = sum(row[2] for row in answers["alerts-per-hour"].rows)
        refreshed = self._session.relay.history.refreshed_at
        as_of = refreshed.strftime("%H:%M:%S UTC") if refreshed is not None else "—"
        self.status.object = (
            f"<b>{total}</b> alerts, <b>{len(unusual)}</b> unusual hours · analytics as of {as_of}"
            if total
            else f"No alerts in this range · analytics as of {as_of}"
        )
        self.report.object = f"<a class='report-link' href='{escape(query.report_url())}' download>⬇ Report</a>"

    # ------------------------------------------------------------------ to History

    def _unusual_clicked(self, event: Any) -> None:
        if 0 <= event.row < len(self._unusual_rows):
            row = self._unusual_rows.iloc[event.row]
            self._show_hour(str(row["streamId"]), str(row["hour"]))

    def _mark_tapped(self, marks: ColumnDataSource, indices: list[int]) -> None:
        if indices:
            data: Any = marks.data
            moment = pd.Timestamp(data["hour"][indices[-1]])
            self._show_hour(str(data["streamId"][indices[-1]]), moment.strftime("%Y-%m-%dT%H:00:00Z"))

    def _show_hour(self, stream_id: str, hour: str) -> None:
        start = datetime.fromisoformat(hour.replace("Z", "+00:00")).replace(tzinfo=None)
        self._open_history(stream_id, start, start + timedelta(hours=1))
