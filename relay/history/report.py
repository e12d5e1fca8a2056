"""``relay report``: alert history as one self-contained HTML page with plots.

The page needs no server and no network: BokehJS is inlined, so the file can be
mailed or archived as it is.  It reads the same table as the export
(:func:`relay.export.to_frame`), so the report and an exported file always agree.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from relay.clock import iso
from relay.history.palette import SEVERITY_COLOURS
from relay.wire import SEVERITIES

if TYPE_CHECKING:
    import pandas as pd
    from bokeh.model import Model

RECENT_ROWS: Final = 25
MAX_BUCKETS: Final = 60
BUCKETS: Final = (
    (1, "second"),
    (10, "10 seconds"),
    (60, "minute"),
    (600, "10 minutes"),
    (3600, "hour"),
    (6 * 3600, "6 hours"),
    (86400, "day"),
    (7 * 86400, "week"),
)
"""Sizes of the time buckets of the first plot; the smallest giving at most MAX_BUCKETS bars wins."""


def render(
    alerts: pd.DataFrame,
    *,
    title: str,
    since: datetime | None,
    until: datetime | None,
    stream_names: Mapping[str, str] | None = None,
) -> str:
    """The whole HTML page for the alerts in ``alerts`` (an export table).

    ``stream_names`` labels streams by device name ("Loading dock (stream_…)").
    """
    names = stream_names or {}
    alerts = alerts.assign(stream=alerts["streamId"].map(lambda s: f"{names[s]} ({s})" if s in names else s))
    from bokeh.embed import file_html
    from bokeh.layouts import column, row
    from bokeh.models.widgets import Div
    from bokeh.resources import INLINE

    summary = Div(text=_summary_html(alerts, since, until), sizing_mode="stretch_width")
    if alerts.empty:
        body: Model = column(summary, sizing_mode="stretch_width")
    else:
        body = column(
            summary,
            _over_time(alerts),
            row(_by_stream(alerts), _by_object_type(alerts), sizing_mode="stretch_width"),
            _confidence(alerts),
            Div(text=_recent_html(alerts), sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )
    return file_html(body, resources=INLINE, title=title)


def _summary_html(alerts: pd.DataFrame, since: datetime | None, until: datetime | None) -> str:
    first = _when(alerts["createdAt"].min()) if not alerts.empty else None
    last = _when(alerts["createdAt"].max()) if not alerts.empty else None
    counts = alerts["severity"].value_counts()
    cells = "".join(
        f'<td style="padding:4px 12px;border-left:6px solid {SEVERITY_COLOURS[s]}">'
        f"<b>{int(counts.get(s, 0))}</b> {s}</td>"
        for s in SEVERITIES
    )
    window = f"{iso(since) if since else 'the beginning'} to {iso(until) if until else 'now'}"
    span = f"first {first}, last {last}" if first else "no alerts in this window"
    return (
        f"<h1>Alert report</h1><p>Alerts stored from {html.escape(window)}: <b>{len(alerts)}</b> "
        f"on {alerts['stream'].nunique()} streams ({html.escape(span)}).</p><table><tr>{cells}</tr></table>"
    )


def _over_time(alerts: pd.DataFrame) -> Model:
    """Alerts per time bucket, stacked by severity; the bucket follows the span of the data."""
    from bokeh.models import HoverTool
    from bokeh.plotting import figure

    span = (alerts["createdAt"].max() - alerts["createdAt"].min()).total_seconds()
    seconds, label = next(
        ((size, name) for size, name in BUCKETS if span / size <= MAX_BUCKETS), (BUCKETS[-1][0], BUCKETS[-1][1])
    )
    bucket = f"{seconds}s"
    counts = (
        alerts.assign(bucket=alerts["createdAt"].dt.floor(bucket).dt.tz_localize(None))
        .pivot_table(index="bucket", columns="severity", values="id", aggfunc="count", fill_value=0)
        .reindex(columns=list(SEVERITIES), fill_value=0)
    )
    plot = figure(
        title=f"Alerts per {label} by severity",
        x_axis_type="datetime",
        height=280,
        sizing_mode="stretch_width",
        tools="xpan,xwheel_zoom,reset,save",
    )
    source = {"bucket": list(counts.index), **{s: list(counts[s]) for s in SEVERITIES}}
    plot.vbar_stack(
        list(SEVERITIES),
        x="bucket",
        width=seconds * 1000 * 0.9,
        source=source,
        color=[SEVERITY_COLOURS[s] for s in SEVERITIES],
        legend_label=list(SEVERITIES),
    )
    plot.add_tools(
        HoverTool(
            tooltips=[("time", "@bucket{%F %T}"), *[(s, f"@{s}") for s in SEVERITIES]],
            formatters={"@bucket": "datetime"},
        )
    )
    plot.legend.location = "top_left"
    plot.yaxis.axis_label = "alerts"
    return plot


def _by_stream(alerts: pd.DataFrame) -> Model:
    from bokeh.models import FactorRange
    from bokeh.plotting import figure

    counts = (
        alerts.pivot_table(index="stream", columns="severity", values="id", aggfunc="count", fill_value=0)
        .reindex(columns=list(SEVERITIES), fill_value=0)
        .assign(total=lambda frame: frame.sum(axis=1))
        .sort_values("total")
        .tail(20)
    )
    streams = [str(s) for s in counts.index]
    plot = figure(
        y_range=FactorRange(factors=streams),
        title="Alerts by stream (top 20)",
        height=max(200, 26 * len(streams) + 60),
        sizing_mode="stretch_width",
        tools="save",
    )
    source = {"stream": streams, **{s: list(counts[s]) for s in SEVERITIES}}
    plot.hbar_stack(
        list(SEVERITIES), y="stream", height=0.8, source=source, color=[SEVERITY_COLOURS[s] for s in SEVERITIES]
    )
    plot.xaxis.axis_label = "alerts"
    return plot


def _by_object_type(alerts: pd.DataFrame) -> Model:
    from bokeh.models import FactorRange
    from bokeh.plotting import figure

    counts = alerts["objectType"].fillna("(none)").value_counts().sort_values().tail(15)
    kinds = [str(k) for k in counts.index]
    plot = figure(
        y_range=FactorRange(factors=kinds),
        title="Alerts by object type",
        height=max(200, 26 * len(kinds) + 60),
        sizing_mode="stretch_width",
        tools="save",
    )
    plot.hbar(y=kinds, right=list(counts), height=0.8, color="#4c78a8")
    plot.xaxis.axis_label = "alerts"
    return plot


def _confidence(alerts: pd.DataFrame) -> Model:
    import numpy as np
    from bokeh.plotting import figure

    confidences = alerts["confidence"].dropna().to_numpy()
    plot = figure(title="Detector confidence", height=220, sizing_mode="stretch_width", tools="save")
    counts, edges = np.histogram(confidences, bins=20, range=(0.0, 1.0))
    plot.quad(top=counts, bottom=0, left=edges[:-1], right=edges[1:], color="#72b7b2", line_color="white")
    plot.xaxis.axis_label = "confidence (alerts without one are left out)"
    plot.yaxis.axis_label = "alerts"
    return plot


def _recent_html(alerts: pd.DataFrame) -> str:
    serious = alerts[alerts["severity"].isin(["high", "critical"])].sort_values("createdAt", ascending=False)
    latest = serious.head(RECENT_ROWS)
    rows = "".join(
        f"<tr><td>{_when(stored)}</td>"
        f'<td style="color:{SEVERITY_COLOURS[str(severity)]}"><b>{html.escape(str(severity))}</b></td>'
        f"<td>{html.escape(str(stream))}</td><td>{html.escape(str(message))}</td></tr>"
        for stored, severity, stream, message in zip(
            latest["createdAt"], latest["severity"], latest["stream"], latest["message"], strict=True
        )
    )
    if not rows:
        return "<h2>Latest high and critical alerts</h2><p>None.</p>"
    return (
        f"<h2>Latest high and critical alerts</h2><table><tr><th>stored</th><th>severity</th><th>stream</th>"
        f"<th>message</th></tr>{rows}</table>"
    )


def _when(value: Any) -> str:
    """A pandas timestamp as the API writes times."""
    import pandas as pd

    return iso(pd.Timestamp(value).to_pydatetime()) or ""
