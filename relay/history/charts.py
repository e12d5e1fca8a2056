"""Bokeh charts of the analytics answers: one drawing for the workbench's Analytics page and the report.

Each function takes :class:`~relay.history.analytics.Answer` objects (what
``GET /api/analytics/{name}`` answers) and returns a Bokeh model; the page
shows it in a pane, the report inlines it in a file.  Drawing from the answers,
not from rows of alerts, is what makes the page, the report and the API agree.

Streams are labelled through ``names`` (stream id → what to call it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import pandas as pd

from relay.history.analytics import CONFIDENCE_BINS, Answer
from relay.history.palette import SEVERITY_COLOURS
from relay.wire import SEVERITIES

if TYPE_CHECKING:
    from bokeh.core.property.vectorization import Field
    from bokeh.models import ColumnDataSource, LayoutDOM
    from bokeh.models.glyph import Glyph
    from bokeh.models.renderers import GlyphRenderer
    from bokeh.plotting import figure as Figure

UNUSUAL_COLOUR: Final = "#d62728"
STREAM_COLOURS: Final = (
    "#4c78a8",
    "#72b7b2",
    "#54a24b",
    "#eeca3b",
    "#b279a2",
    "#ff9da6",
    "#9d755d",
    "#bab0ac",
    "#f58518",
    "#e45756",
)
"""Vega's category palette: streams get colours of their own, severities keep theirs."""
MAX_BARS: Final = 400
BUCKETS: Final = ((1, "hour"), (6, "6 hours"), (24, "day"), (24 * 7, "week"))
"""Bar widths in hours; the smallest that keeps the over-time chart within MAX_BARS bars wins."""
TOOLS: Final = "xpan,xwheel_zoom,box_zoom,reset,save"


def label(names: Mapping[str, str], stream_id: str) -> str:
    return names.get(stream_id, stream_id)


def _draw(plot: Figure, source: ColumnDataSource, glyph: Glyph, name: str | None = None) -> GlyphRenderer[Any]:
    """``glyph`` drawn from ``source``, its looks when unselected or muted left to BokehJS ("auto").

    ``figure.vbar()`` and the like build a glyph model for each of those looks as well: two of every
    renderer's six models, each made, sent and turned into a view on every draw of the page, where
    BokehJS derives the same looks from the glyph itself.
    """
    return plot.add_glyph(source, glyph, name=name)


def _legend(plot: Figure, items: list[tuple[str | Field, GlyphRenderer[Any]]], **options: Any) -> None:
    """A legend of ``(label, renderer)`` items; a ``field(column)`` label gives an item per value of the column."""
    from bokeh.models.annotations import Legend, LegendItem

    legend = Legend(items=[LegendItem(label=text, renderers=[renderer]) for text, renderer in items], **options)
    plot.add_layout(legend)


def alerts_over_time(per_hour: Answer, unusual: Answer, names: Mapping[str, str]) -> tuple[Figure, ColumnDataSource]:
    """Alerts per time bucket stacked by stream, with the unusual hours marked above their bars.

    Returns the figure and the data source of the marks (the page listens to its selection).
    """
    from bokeh.models import ColumnDataSource, HoverTool, Scatter, TapTool, VBar
    from bokeh.plotting import figure

    frame = per_hour.frame()
    marks = ColumnDataSource({"hour": [], "alerts": [], "stream": [], "streamId": [], "expected": [], "y": []})
    if frame.empty:
        empty = figure(
            x_axis_type="datetime",
            height=300,
            sizing_mode="stretch_width",
            tools=TOOLS,
            title="Alerts over time: none in this range",
        )
        return empty, marks
    frame["hour"] = pd.to_datetime(frame["hour"]).dt.tz_localize(None)
    span_hours = (frame["hour"].max() - frame["hour"].min()) / pd.Timedelta(hours=1) + 1
    hours, name = next(((size, name) for size, name in BUCKETS if span_hours / size <= MAX_BARS), BUCKETS[-1])
    plot = figure(
        x_axis_type="datetime",
        height=300,
        sizing_mode="stretch_width",
        tools=TOOLS,
        title=f"Alerts per {name} (UTC), by stream",
    )
    frame["bucket"] = frame["hour"].dt.floor(f"{hours}h")
    table = frame.pivot_table(index="bucket", columns="streamId", values="alerts", aggfunc="sum", fill_value=0)
    streams = [str(stream) for stream in table.columns]
    # Arrays, not lists: Bokeh sends them to the browser as binary buffers (a month is 7,200 bars).  Each
    # stream's bar starts where the last one's ends, summed here rather than by two Stack transforms per
    # stream (vbar_stack's): twenty fewer models to build, send and draw on every page and report.
    tops = table.cumsum(axis=1)
    data: dict[str, Any] = {
        "bucket": table.index.to_numpy(),
        **{stream: table[stream].to_numpy() for stream in streams},
    }
    for index, stream in enumerate(streams):
        data[f"{index}.top"] = tops[stream].to_numpy()
        data[f"{index}.bottom"] = (tops[stream] - table[stream]).to_numpy()
    source = ColumnDataSource(data)
    colours = [STREAM_COLOURS[index % len(STREAM_COLOURS)] for index in range(len(streams))]
    stacked = [
        _draw(
            plot,
            source,
            VBar(
                x="bucket",
                bottom=f"{index}.bottom",
                top=f"{index}.top",
                width=hours * 3_600_000 * 0.9,
                fill_color=colours[index],
                line_color=colours[index],
            ),
            name=stream,
        )
        for index, stream in enumerate(streams)
    ]
    plot.add_tools(
        HoverTool(
            renderers=[*stacked],
            tooltips=[("from", "@bucket{%F %H:%M} UTC"), ("stream", "$name"), ("alerts", "@$name")],
            formatters={"@bucket": "datetime"},
        )
    )
    plot.yaxis.axis_label = "alerts"
    items: list[tuple[str | Field, GlyphRenderer[Any]]] = [
        (label(names, stream), renderer) for stream, renderer in zip(streams, stacked, strict=True)
    ]
    found = unusual.frame()
    if not found.empty:
        found["hour"] = pd.to_datetime(found["hour"]).dt.tz_localize(None)
        totals = table.sum(axis=1)
        marks.data = {
            "hour": list(found["hour"]),
            "alerts": list(found["alerts"]),
            "stream": [label(names, stream) for stream in found["streamId"]],
            "streamId": list(found["streamId"]),
            "expected": list(found["expected"]),
            "y": [float(totals.get(moment.floor(f"{hours}h"), 0)) * 1.05 for moment in found["hour"]],
        }
        points = _draw(
            plot,
            marks,
            Scatter(
                x="hour",
                y="y",
                marker="inverted_triangle",
                size=13,
                fill_color=UNUSUAL_COLOUR,
                line_color=UNUSUAL_COLOUR,
            ),
        )
        items.append(("unusual hour", points))
        plot.add_tools(
            HoverTool(
                renderers=[points],
                tooltips=[
                    ("unusual", "@hour{%F %H:00} UTC"),
                    ("stream", "@stream"),
                    ("alerts", "@alerts"),
                    ("usual", "@expected"),
                ],
                formatters={"@hour": "datetime"},
            ),
            TapTool(renderers=[points]),
        )
    _legend(plot, items, location="top_left", click_policy="hide")
    return plot, marks


def severity_mix(mix: Answer, names: Mapping[str, str]) -> Figure:
    """Each stream's alerts by severity, stacked, in the severity colours.

    One renderer for all the bars (a row per stream and severity, its ends summed here) rather than
    ``hbar_stack``'s renderer and two ``Stack`` transforms per severity: the legend needs no click here.
    """
    from bokeh.core.properties import field
    from bokeh.models import ColumnDataSource, FactorRange, HBar
    from bokeh.plotting import figure

    frame = mix.frame()
    table = frame.pivot_table(index="streamId", columns="severity", values="alerts", aggfunc="sum", fill_value=0)
    table = table.reindex(columns=list(SEVERITIES), fill_value=0)
    table = table.assign(total=table.sum(axis=1)).sort_values("total")
    streams = [label(names, str(stream)) for stream in table.index]
    plot = figure(
        y_range=FactorRange(factors=streams),
        height=max(180, 28 * len(streams) + 70),
        sizing_mode="stretch_width",
        title="Severity mix by stream",
        tools="hover,save",
        tooltips=[("stream", "@stream"), *[(severity, f"@{severity}") for severity in SEVERITIES]],
    )
    if streams:
        ends = table[list(SEVERITIES)].cumsum(axis=1)
        rows = [(stream, severity) for stream in range(len(streams)) for severity in SEVERITIES]
        source = ColumnDataSource(
            {
                "stream": [streams[stream] for stream, _ in rows],
                "severity": [severity for _, severity in rows],
                "colour": [SEVERITY_COLOURS[severity] for _, severity in rows],
                "left": [
                    float(ends.iloc[stream][severity] - table.iloc[stream][severity]) for stream, severity in rows
                ],
                "right": [float(ends.iloc[stream][severity]) for stream, severity in rows],
                **{severity: [int(table.iloc[stream][severity]) for stream, _ in rows] for severity in SEVERITIES},
            }
        )
        bars = _draw(
            plot,
            source,
            HBar(y="stream", left="left", right="right", height=0.8, fill_color="colour", line_color="colour"),
        )
        _legend(plot, [(field("severity"), bars)], location="bottom_right", orientation="horizontal")
    plot.xaxis.axis_label = "alerts"
    return plot


def top_object_types(kinds: Answer) -> Figure:
    from bokeh.models import ColumnDataSource, FactorRange, HBar
    from bokeh.plotting import figure

    frame = kinds.frame().iloc[::-1]
    names = [str(kind) for kind in frame["objectType"]]
    plot = figure(
        y_range=FactorRange(factors=names),
        height=max(180, 26 * len(names) + 70),
        sizing_mode="stretch_width",
        title="Top object types",
        tools="hover,save",
        tooltips=[("object", "@kind"), ("alerts", "@alerts"), ("share", "@share{0.0%}")],
    )
    source = ColumnDataSource({"kind": names, "alerts": list(frame["alerts"]), "share": list(frame["share"])})
    _draw(plot, source, HBar(y="kind", right="alerts", height=0.8, fill_color="#4c78a8", line_color="#4c78a8"))
    plot.xaxis.axis_label = "alerts"
    return plot


def confidence_histogram(histogram: Answer, *, most: int = 6) -> Figure:
    """The detector's confidence for the ``most`` commonest object types, as overlaid bars over [0, 1]."""
    from bokeh.models import ColumnDataSource, Quad, Range1d
    from bokeh.plotting import figure

    frame = histogram.frame()
    plot = figure(
        height=260,
        sizing_mode="stretch_width",
        title="Detector confidence by object type",
        tools="hover,save",
        tooltips=[("object", "$name"), ("confidence", "@left{0.00}–@right{0.00}"), ("alerts", "@$name")],
        x_range=Range1d(start=0, end=1),
    )
    if frame.empty:
        return plot
    frame["objectType"] = frame["objectType"].fillna("(none)")
    common = frame.groupby("objectType")["alerts"].sum().sort_values(ascending=False).head(most).index
    # One source for every kind (a column of counts each, by bin) rather than a source per kind: each
    # source brings its own selection and policy models to build, send and draw.
    counts = frame.pivot_table(index="binStart", columns="objectType", values="alerts", aggfunc="sum", fill_value=0)
    bins = counts.index.to_numpy()
    source = ColumnDataSource(
        {
            "left": bins,
            "right": bins + 1 / CONFIDENCE_BINS,
            **{str(kind): counts[kind].to_numpy() for kind in common},
        }
    )
    kinds = [str(kind) for kind in common]
    colours = [STREAM_COLOURS[index % len(STREAM_COLOURS)] for index in range(len(kinds))]
    bars = [
        _draw(
            plot,
            source,
            Quad(
                left="left",
                right="right",
                top=kind,
                bottom=0,
                fill_color=colour,
                line_color=colour,
                fill_alpha=0.3,
            ),
            name=kind,
        )
        for kind, colour in zip(kinds, colours, strict=True)
    ]
    _legend(plot, list(zip(kinds, bars, strict=True)), location="top_left", click_policy="hide")
    plot.xaxis.axis_label = "confidence"
    plot.yaxis.axis_label = "alerts"
    return plot


DAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def hour_of_week(week: Answer) -> Figure:
    """A heat map of the week: days down, hours (UTC) across."""
    from bokeh.models import ColumnDataSource, FactorRange, LinearColorMapper, Rect
    from bokeh.palettes import Blues256
    from bokeh.plotting import figure

    frame = week.frame()
    hours = [f"{hour:02d}" for hour in range(24)]
    plot = figure(
        x_range=FactorRange(factors=hours),
        y_range=FactorRange(factors=list(reversed(DAYS))),
        height=260,
        sizing_mode="stretch_width",
        title="Alerts by hour of the week (UTC)",
        tools="hover,save",
        tooltips=[("when", "@day @hour:00"), ("alerts", "@alerts")],
        x_axis_location="above",
    )
    source = ColumnDataSource(
        {
            "day": [DAYS[int(day) - 1] for day in frame["dayOfWeek"]],
            "hour": [f"{int(hour):02d}" for hour in frame["hour"]],
            "alerts": list(frame["alerts"]),
        }
    )
    mapper = LinearColorMapper(palette=list(reversed(Blues256)), low=0, high=max(1, int(frame["alerts"].max() or 0)))
    _draw(
        plot,
        source,
        Rect(
            x="hour", y="day", width=1, height=1, line_color=None, fill_color={"field": "alerts", "transform": mapper}
        ),
    )
    plot.grid.grid_line_color = None
    plot.axis.axis_line_color = None
    return plot


def time_between_alerts(gaps: Answer, names: Mapping[str, str]) -> Figure:
    """Per stream, the mean and the median time from one alert to the next."""
    from bokeh.models import ColumnDataSource, FactorRange, HBar
    from bokeh.plotting import figure
    from bokeh.transform import dodge

    frame = gaps.frame().dropna(subset=["meanSeconds"])
    streams = [label(names, str(stream)) for stream in frame["streamId"]]
    plot = figure(
        y_range=FactorRange(factors=streams),
        height=max(180, 34 * len(streams) + 70),
        sizing_mode="stretch_width",
        title="Time between alerts (minutes)",
        tools="hover,save",
        tooltips=[
            ("stream", "@stream"),
            ("mean", "@mean{0.0} min"),
            ("median", "@median{0.0} min"),
            ("alerts", "@alerts"),
        ],
    )
    source = ColumnDataSource(
        {
            "stream": streams,
            "mean": list(frame["meanSeconds"] / 60),
            "median": list(frame["medianSeconds"] / 60),
            "alerts": list(frame["alerts"]),
        }
    )
    bars = [
        (
            which,
            _draw(
                plot,
                source,
                HBar(
                    y=dodge("stream", offset, range=plot.y_range),
                    right=which,
                    height=0.34,
                    fill_color=colour,
                    line_color=colour,
                ),
            ),
        )
        for which, offset, colour in (("mean", 0.18, "#4c78a8"), ("median", -0.18, "#72b7b2"))
    ]
    _legend(plot, [*bars], location="bottom_right")
    plot.xaxis.axis_label = "minutes"
    return plot


def summaries(answers: Mapping[str, Answer], names: Mapping[str, str]) -> list[LayoutDOM]:
    """The five smaller charts as the Analytics page and the report lay them out: two rows, then the gaps."""
    from bokeh.layouts import row

    return [
        row(
            severity_mix(answers["severity-mix"], names),
            top_object_types(answers["top-object-types"]),
            sizing_mode="stretch_width",
        ),
        row(
            confidence_histogram(answers["confidence-histogram"]),
            hour_of_week(answers["hour-of-week"]),
            sizing_mode="stretch_width",
        ),
        time_between_alerts(answers["time-between-alerts"], names),
    ]
