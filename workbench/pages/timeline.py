"""The Timeline page: the analyst's alerts over time, one row per stream, live.

Each alert is a point at its event time on its stream's row, coloured by
severity, with the message, confidence and object type on hover; the plot pans
and zooms in time, and clicking a point shows the alert's details below it.

The plot starts from the store and then grows with the tab's live alerts.  So
that nothing falls between the two, a stream's recent alerts are read from the
store each time the tab's feed has subscribed to that stream's live alerts
(alerts read twice are kept once, by id): whatever was stored before that moment
is read, whatever comes after it arrives live.

Changes to the Bokeh plot are applied on the document's next tick, where Bokeh
holds the document's lock, because they come from places (feed, store reads,
the stream refresh) that run outside it; ``pn.state.execute(change, schedule=True)``
is the one way they are scheduled.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import timedelta
from typing import Any, Final

import panel as pn
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
from workbench.alerts import LiveAlert
from workbench.pages.page import Page
from workbench.session import AnalystSession
from workbench.widgets.alert_detail import AlertDetail

HISTORY_WINDOW: Final = timedelta(hours=24)
NARROWEST_VIEW: Final = timedelta(minutes=10)
HISTORY_PER_STREAM: Final = 500
MAX_POINTS: Final = 5_000
SOURCE_NAME: Final = "timeline-alerts"
PLOT_NAME: Final = "timeline-plot"
_COLUMNS: Final = ("id", "stream", "time", "severity", "message", "confidence", "object_type", "device")


class TimelinePage(Page):
    """The plot of the analyst's alerts and the detail of the one clicked; live, on screen or not."""

    title = "Timeline"

    def __init__(self, session: AnalystSession, **params: Any) -> None:
        super().__init__(session, **params)
        self._alerts: dict[str, LiveAlert] = {}
        self.source = ColumnDataSource(data={column: [] for column in _COLUMNS}, name=SOURCE_NAME)
        self._labels = CustomJSTickFormatter(args={"labels": {}}, code="return labels[tick] ?? tick")
        self.figure = _alert_figure(self.source, self._labels)
        self.detail = AlertDetail(session)
        self.source.selected.on_change("indices", self._tapped)
        session.param.watch(self._alert_arrived, "latest_alert")
        session.param.watch(self._subscribed, "subscribed")
        session.param.watch(lambda _event: pn.state.execute(self._show_streams, schedule=True), "streams")
        self._show_streams()
        self._page = pn.Column(
            pn.pane.Markdown(
                f"Alerts of the last {HISTORY_WINDOW.total_seconds() / 3600:g} hours and from now on, one row per "
                "stream. Hover for details, drag to pan, scroll to zoom, click a point to open it."
            ),
            pn.pane.Bokeh(self.figure, sizing_mode="stretch_width"),
            self.detail,
            sizing_mode="stretch_width",
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self._page

    def _show_streams(self) -> None:
        """One row per stream, labelled with its device name."""
        streams = self._session.stream_ids
        self.figure.y_range.factors = list(reversed(streams)) or ["(no streams)"]  # the first stream on top
        self._labels.args = {"labels": {stream_id: self._session.label(stream_id) for stream_id in streams}}
        self.figure.height = max(320, 130 + 56 * len(streams))

    def _alert_arrived(self, event: Event) -> None:
        alert: LiveAlert = event.new
        pn.state.execute(lambda: self._add([alert]), schedule=True)

    def _subscribed(self, event: Event) -> None:
        """Read what the store holds of the stream the feed now receives live, and plot it."""
        stream_id: str = event.new

        async def read() -> None:
            where = AlertFilter(user_id=self._session.user_id, stream_ids=[stream_id], since=utcnow() - HISTORY_WINDOW)
            rows = await self._session.relay.store.alerts.page(where, limit=HISTORY_PER_STREAM)
            alerts = [LiveAlert.from_row(row) for row in reversed(rows)]
            pn.state.execute(lambda: self._add(alerts), schedule=True)

        pn.state.execute(read)

    def _add(self, alerts: Iterable[LiveAlert]) -> None:
        fresh = [alert for alert in alerts if alert.id not in self._alerts]
        if not fresh:
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

    def _tapped(self, _attribute: str, _old: Any, indices: list[int]) -> None:
        if not indices:
            return
        alert = self._alerts.get(self.source.data["id"][indices[-1]])
        if alert is not None:
            self.detail.alert = alert


def _alert_figure(source: ColumnDataSource, labels: CustomJSTickFormatter) -> Any:
    """Points at (event time, stream), one renderer per severity (its colour, its legend entry);
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
            legend_label=severity,
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
    plot.legend.orientation = "horizontal"
    plot.add_layout(plot.legend[0], "above")
    plot.ygrid.grid_line_color = None
    return plot
