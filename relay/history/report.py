"""The alert report: one self-contained HTML file with the analytics of a period, built from the DuckDB queries.

``relay report``, ``GET /api/alerts/report`` and the workbench's Report buttons
make it.  It draws the answers of the named queries
(:mod:`relay.history.analytics`) with the charts of the Analytics page
(:mod:`relay.history.charts`), so the report, the page and
``GET /api/analytics/{name}`` agree, and adds what a reader of a mailed report
wants besides: the period's summary, the unusual hours as a list, the latest
serious alerts.  BokehJS is inlined: the file opens offline, anywhere.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Final

from relay.clock import iso
from relay.history import charts
from relay.history.analytics import ISO_FORMAT, QUERIES, Answer, Query
from relay.history.palette import SEVERITY_COLOURS
from relay.store import AlertFilter
from relay.wire import SEVERITIES

LATEST_SERIOUS: Final = Query(
    "latest-serious",
    "The latest high and critical alerts.",
    ("createdAt", "severity", "streamId", "message", "objectType", "confidence"),
    f"""SELECT strftime(ts, {ISO_FORMAT}) AS createdAt, severity, streamId, message, objectType, confidence
        FROM alerts WHERE severity IN ('high', 'critical') ORDER BY seq DESC LIMIT 25""",
)
TOTALS: Final = Query(
    "totals",
    "How many alerts, on how many streams, from when to when.",
    ("alerts", "streams", "first", "last"),
    f"""SELECT count(*) AS alerts, count(DISTINCT streamId) AS streams, strftime(min(ts), {ISO_FORMAT}) AS first,
               strftime(max(ts), {ISO_FORMAT}) AS last
        FROM alerts""",
)
STREAM_NAMES: Final = Query(
    "stream-names",
    "Each stream's device name.",
    ("streamId", "deviceName"),
    "SELECT streamId, any_value(deviceName) AS deviceName FROM alerts GROUP BY streamId",
)
REPORT_QUERIES: Final = (*QUERIES.values(), LATEST_SERIOUS, TOTALS, STREAM_NAMES)

Runner = Callable[[Query, AlertFilter], Answer]
"""Runs a query for a filter: :meth:`relay.history.analytics.Analytics.run`."""


def gather(run: Runner, where: AlertFilter) -> dict[str, Answer]:
    """Every answer a report shows, by query name."""
    return {query.name: run(query, where) for query in REPORT_QUERIES}


def stream_labels(answers: Mapping[str, Answer]) -> dict[str, str]:
    """ "Loading dock (stream_…)" for each stream, as the report names them."""
    return {str(stream): f"{name} ({stream})" if name else str(stream) for stream, name in answers["stream-names"].rows}


def render(answers: Mapping[str, Answer], *, title: str, since: datetime | None, until: datetime | None) -> str:
    """The whole HTML page of ``answers`` (from :func:`gather`)."""
    from bokeh.embed import file_html
    from bokeh.layouts import column
    from bokeh.models.widgets import Div
    from bokeh.resources import INLINE

    names = stream_labels(answers)
    summary = Div(text=_summary_html(answers, since, until), sizing_mode="stretch_width")
    alerts = answers["totals"].rows[0][0] if answers["totals"].rows else 0
    if not alerts:
        return file_html(column(summary, sizing_mode="stretch_width"), resources=INLINE, title=title)
    over_time, _ = charts.alerts_over_time(answers["alerts-per-hour"], answers["unusual-hours"], names)
    body = column(
        summary,
        over_time,
        Div(text=_unusual_html(answers["unusual-hours"], names), sizing_mode="stretch_width"),
        *charts.summaries(answers, names),
        Div(text=_latest_html(answers["latest-serious"], names), sizing_mode="stretch_width"),
        sizing_mode="stretch_width",
    )
    return file_html(body, resources=INLINE, title=title)


def _summary_html(answers: Mapping[str, Answer], since: datetime | None, until: datetime | None) -> str:
    alerts, streams, first, last = answers["totals"].rows[0] if answers["totals"].rows else (0, 0, None, None)
    by_severity = {severity: 0 for severity in SEVERITIES}
    for _stream, severity, count, _share in answers["severity-mix"].rows:
        by_severity[str(severity)] = by_severity.get(str(severity), 0) + int(count)
    cells = "".join(
        f'<td style="padding:4px 12px;border-left:6px solid {SEVERITY_COLOURS[severity]}">'
        f"<b>{by_severity[severity]}</b> {severity}</td>"
        for severity in SEVERITIES
    )
    window = f"{iso(since) if since else 'the beginning'} to {iso(until) if until else 'now'}"
    span = f"first {first}, last {last}" if alerts else "no alerts in this window"
    unusual = len(answers["unusual-hours"].rows)
    return (
        f"<h1>Alert report</h1><p>Alerts stored from {html.escape(window)}: <b>{alerts}</b> on {streams} streams "
        f"({html.escape(span)}); <b>{unusual}</b> unusual hours.</p><table><tr>{cells}</tr></table>"
    )


def _unusual_html(unusual: Answer, names: Mapping[str, str]) -> str:
    if not unusual.rows:
        return "<h2>Unusual hours</h2><p>None: every stream kept to its usual numbers for the time of day.</p>"
    rows = "".join(
        f"<tr><td>{html.escape(str(hour))}</td><td>{html.escape(charts.label(names, str(stream)))}</td>"
        f"<td><b>{alerts}</b></td><td>{expected}</td><td>{threshold}</td></tr>"
        for stream, hour, alerts, expected, threshold in unusual.rows
    )
    return (
        "<h2>Unusual hours</h2><p>Hours in which a stream raised far more alerts than it usually does at that "
        "time of day (more than the mean plus three standard deviations).</p>"
        "<table><tr><th>hour (UTC)</th><th>stream</th><th>alerts</th><th>usual</th><th>threshold</th></tr>"
        f"{rows}</table>"
    )


def _latest_html(latest: Answer, names: Mapping[str, str]) -> str:
    if not latest.rows:
        return "<h2>Latest high and critical alerts</h2><p>None.</p>"
    rows = "".join(
        f"<tr><td>{html.escape(str(stored))}</td>"
        f'<td style="color:{SEVERITY_COLOURS.get(str(severity), "#333")}"><b>{html.escape(str(severity))}</b></td>'
        f"<td>{html.escape(charts.label(names, str(stream)))}</td><td>{html.escape(str(message))}</td>"
        f"<td>{html.escape(str(kind or ''))}</td><td>{'' if confidence is None else f'{confidence:.2f}'}</td></tr>"
        for stored, severity, stream, message, kind, confidence in latest.rows
    )
    return (
        "<h2>Latest high and critical alerts</h2><table><tr><th>stored (UTC)</th><th>severity</th><th>stream</th>"
        f"<th>message</th><th>object</th><th>confidence</th></tr>{rows}</table>"
    )
