"""The Timeline page: the analyst's alerts over time, one row per stream, live.

Each alert is a point at its event time on its stream's row, coloured by
severity (a legend names all four, in the palette the report uses too), with the
message, confidence and object type on hover; the plot pans and zooms in time,
and clicking a point shows the alert's details below it.

A date range picker chooses the alerts shown, by when the relay stored them: the
last 24 hours and from now on (live) by default, or any two times, from which
"Last 24 hours" comes back.  An empty plot says why: no streams yet, or no alerts
between those two times.

The plot starts from the store and then grows with the tab's live alerts.  So
that nothing falls between the two, a stream's alerts are read from the
store each time the tab's feed has subscribed to that stream's live alerts
(alerts read twice are kept once, by id): whatever was stored before that moment
is read, whatever comes after it arrives live.  A new range empties the plot and
reads every stream again; reads begun for the range before are dropped.

Changes to the Bokeh plot are applied on the document's next tick, where Bokeh
holds the document's lock, because they come from places (feed, store reads,
the stream refresh) that run outside it; ``pn.state.execute(change, schedule=True)``
is the one way they are scheduled.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any, Final

import panel as pn
import param
from bokeh.models import (
    CDSView,
    ColumnDataSource,
    CustomJSTickFormatter,
    DataRange1d,
    FactorRange,
    GroupFilter,
    HoverTool,
)
from bokeh.plotting import figure
from param.parameterized import Event

from relay.clock import utcnow
from relay.history.palette import SEVERITY_COLOURS
from relay.store import AlertFilter
from workbench.alerts import LiveAlert, format_time
from workbench.pages.page import Page
from workbench.session import AnalystSession
from workbench.widgets.alert_detail import AlertDetail

HISTORY_WINDOW: Final = timedelta(hours=24)
NARROWEST_VIEW: Final = timedelta(minutes=10)
HISTORY_PER_STREAM: Final = 500
MAX_POINTS: Final = 5_000
SOURCE_NAME: Final = "timeline-alerts"
PLOT_NAME: Final = "timeline-plot"
_NO_STREAMS: Final = (
    "No streams yet: a phone registers one with <code>POST /api/streams/register</code>, and its alerts appear here."
)
_COLUMNS: Final = ("id", "stream", "time", "severity", "message", "confidence", "object_type", "device")


class TimelinePage(Page):
    """The plot of the analyst's alerts and the detail of the one clicked; live, on screen or not."""

    title = "Timeline"

    since: datetime = param.Date(doc="The earliest storage time shown (UTC).")  # type: ignore[assignment]
    until: datetime | None = param.Date(  # type: ignore[assignment]
        default=None, allow_None=True, doc="The latest storage time shown (UTC); None: up to now and live."
    )

    def __init__(self, session: AnalystSession, **params: Any) -> None:
        params.setdefault("since", utcnow() - HISTORY_WINDOW)
        super().__init__(session, **params)
        self._alerts: dict[str, LiveAlert] = {}
        self._range_number = 0
        """Counts the ranges chosen, so that a read begun for an earlier range is dropped."""
        self._reading = 0
        self.source = ColumnDataSource(data=_no_points(), name=SOURCE_NAME)
        self._labels = CustomJSTickFormatter(args={"labels": {}}, code="return labels[tick] ?? tick")
        self.figure = _alert_figure(self.source, self._labels)
        self.detail = AlertDetail(session)
        self._shown = self._picked()
        """The range the picker was last given, to tell the analyst's changes from the page's."""
        self.range_picker = pn.widgets.DatetimeRangePicker(
            label="Alerts stored between (UTC)",
            value=self._shown,
            allow_input=True,
            width=340,
        )
        self.range_picker.param.watch(self._range_picked, "value")
        self._last_day = pn.widgets.Button(label="Last 24 hours and live", color="primary", align="end")
        self._last_day.on_click(self._back_to_last_day)
        self.empty = pn.pane.HTML(
            "",
            css_classes=["timeline-empty"],
            visible=False,
            sizing_mode="stretch_width",
            styles={"position": "absolute", "top": "45%", "left": "0", "z-index": "1", "pointer-events": "none"},
        )
        self.source.selected.on_change("indices", self._tapped)
        session.param.watch(self._alert_arrived, "latest_alert")
        session.param.watch(self._subscribed, "subscribed")
        session.param.watch(lambda _event: pn.state.execute(self._show_streams, schedule=True), "streams")
        self._show_streams()
        self._page = pn.Column(
            pn.pane.Markdown(
                "One row per stream. Hover for details, drag to pan, scroll to zoom, click a point to open it."
            ),
            pn.Row(self.range_picker, self._last_day, pn.pane.HTML(_legend(), align="end")),
            pn.Column(
                pn.pane.Bokeh(self.figure, sizing_mode="stretch_width"),
                self.empty,
                sizing_mode="stretch_width",
                styles={"position": "relative"},
            ),
            self.detail,
            sizing_mode="stretch_width",
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self._page

    def _picked(self) -> tuple[datetime, datetime]:
        """The range as the picker shows it: naive UTC times, ``until`` None shown as now."""
        until = self.until or utcnow()
        return (self.since.astimezone(UTC).replace(tzinfo=None), until.astimezone(UTC).replace(tzinfo=None))

    def _back_to_last_day(self, _event: object) -> None:
        self.param.update(since=utcnow() - HISTORY_WINDOW, until=None)

    def _range_picked(self, event: Event) -> None:
        """The analyst's two times (UTC).  An end left as shown keeps the range live if it was;
        an end from now on makes it live."""
        if event.new is None or event.new == self._shown:
            return
        since, until = (moment.replace(tzinfo=UTC) for moment in event.new)
        if event.new[1] == self._shown[1]:
            until = self.until
        self.param.update(since=since, until=None if until is None or until >= utcnow() else until)

    @param.depends("since", "until", watch=True)
    def _range_changed(self) -> None:
        """Empty the plot and read the new range of every stream."""
        self._range_number += 1
        self._alerts = {}
        self._shown = self._picked()
        self.range_picker.value = self._shown
        self.source.data = _no_points()
        self._show_empty()
        for stream_id in self._session.stream_ids:
            self._read(stream_id)

    def _in_range(self, alert: LiveAlert) -> bool:
        return self.since <= alert.created_at and (self.until is None or alert.created_at < self.until)

    def _show_empty(self) -> None:
        """Say why the plot is empty, once nothing more is being read."""
        if not self._session.stream_ids:
            why = _NO_STREAMS
        elif self._alerts or self._reading:
            why = ""
        else:
            until = "now" if self.until is None else format_time(self.until)
            why = f"No alerts between {escape(format_time(self.since))} and {escape(until)}."
        self.empty.object = f"<div style='text-align:center;color:#555;font-size:15px'>{why}</div>" if why else ""
        self.empty.visible = bool(why)

    def _show_streams(self) -> None:
        """One row per stream, labelled with its device name."""
        streams = self._session.stream_ids
        self.figure.y_range.factors = list(reversed(streams)) or ["(no streams)"]  # the first stream on top
        self._labels.args = {"labels": {stream_id: self._session.label(stream_id) for stream_id in streams}}
        self.figure.height = max(320, 130 + 56 * len(streams))
        self._show_empty()

    def _alert_arrived(self, event: Event) -> None:
        alert: LiveAlert = event.new
        if self._in_range(alert):
            pn.state.execute(lambda: self._add([alert]), schedule=True)

    def _subscribed(self, event: Event) -> None:
        """Read what the store holds of the stream the feed now receives live, and plot it."""
        self._read(event.new)

    def _read(self, stream_id: str) -> None:
        """Read the range's alerts of ``stream_id`` from the store and plot them, unless the range changes meanwhile."""
        number = self._range_number
        where = AlertFilter(user_id=self._session.user_id, stream_ids=[stream_id], since=self.since, until=self.until)
        self._reading += 1

        async def read() -> None:
            try:
                rows = await self._session.relay.store.alerts.page(where, limit=HISTORY_PER_STREAM)
            finally:
                self._reading -= 1
            alerts = [LiveAlert.from_row(row) for row in reversed(rows)]
            if number == self._range_number:
                pn.state.execute(lambda: self._add(alerts), schedule=True)

        pn.state.execute(read)

    def _add(self, alerts: Iterable[LiveAlert]) -> None:
        fresh = [alert for alert in alerts if alert.id not in self._alerts]
        if not fresh:
            self._show_empty()
            return
        for alert in fresh:
            self._alerts[alert.id] = alert
        self.source.stream(
            {
                "id": [alert.id for alert in fresh],
                "stream": [alert.stream_id for alert in fresh],
                "time": [alert.timestamp for alert in fresh],
                "severity": [alert.severity for alert in fresh],
                "message": [alert.message for alert in fresh],
                "confidence": [math.nan if alert.confidence is None else alert.confidence for alert in fresh],
                "object_type": [alert.object_type or "" for alert in fresh],
                "device": [self._session.label(alert.stream_id) for alert in fresh],
            },
            rollover=MAX_POINTS,
        )
        if len(self._alerts) > MAX_POINTS:
            kept = set(self.source.data["id"])
            self._alerts = {alert_id: alert for alert_id, alert in self._alerts.items() if alert_id in kept}
        self._show_empty()

    def _tapped(self, _attribute: str, _old: Any, indices: list[int]) -> None:
        if not indices:
            return
        alert = self._alerts.get(self.source.data["id"][indices[-1]])
        if alert is not None:
            self.detail.alert = alert


def _no_points() -> dict[str, Any]:
    return {column: [] for column in _COLUMNS}


def _legend() -> str:
    """A dot of each severity's colour and its name: all four, whether or not the plot has them."""
    return "".join(
        f"<span class='timeline-legend-item' data-severity='{severity}' style='margin-right:14px;white-space:nowrap'>"
        f"<span class='dot' style='display:inline-block;width:11px;height:11px;border-radius:50%;"
        f"background:{colour};margin-right:5px;vertical-align:-1px'></span>{severity}</span>"
        for severity, colour in SEVERITY_COLOURS.items()
    ).join(("<div class='timeline-legend' style='padding-bottom:8px'>", "</div>"))


def _alert_figure(source: ColumnDataSource, labels: CustomJSTickFormatter) -> Any:
    """Points at (event time, stream), one renderer per severity (its colour);
    the y axis shows device names through ``labels``."""
    plot = figure(
        name=PLOT_NAME,
        x_axis_type="datetime",
        x_range=DataRange1d(min_interval=NARROWEST_VIEW.total_seconds() * 1000, range_padding=0.05),
        y_range=FactorRange(),
        sizing_mode="stretch_width",
        height=320,
        tools="xpan,xwheel_zoom,box_zoom,reset,tap",
        active_drag="xpan",
        active_scroll="xwheel_zoom",
        toolbar_location="above",
        x_axis_label="event time (UTC)",
    )
    points: list[Any] = [
        plot.scatter(
            "time",
            "stream",
            source=source,
            view=CDSView(filter=GroupFilter(column_name="severity", group=severity)),
            color=colour,
            size=12,
            line_color="white",
        )
        for severity, colour in SEVERITY_COLOURS.items()
    ]
    plot.yaxis.formatter = labels
    plot.add_tools(
        HoverTool(
            renderers=points,
            tooltips=[
                ("stream", "@device"),
                ("time", "@time{%F %T}"),
                ("severity", "@severity"),
                ("message", "@message"),
                ("confidence", "@confidence{0.00}"),
                ("object", "@object_type"),
            ],
            formatters={"@time": "datetime"},
        )
    )
    plot.ygrid.grid_line_color = None
    return plot
