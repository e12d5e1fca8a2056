"""The detail view of one alert: the frame it is about with its box, its fields, its metadata, its review.

Shared by the timeline (click a point) and the history (click a row), which set
:attr:`AlertDetail.alert`.  The snapshot is the picture the relay stored with the
alert (``GET /api/alerts/{id}/snapshot``, fetched by the browser with its login
cookie and cached), with ``metadata.location`` drawn over it as a box: the box is
placed in percentages of the picture itself, so it lands on the object whatever
size the picture is shown at.  The review buttons store a verdict for this alert
and the view follows the ``alert-updated`` that comes back, as every other tab
does.  Every value shown comes from an ML service, so it is escaped, never
rendered as HTML.
"""

from __future__ import annotations

from functools import partial
from html import escape
from typing import Any, Final

import panel as pn
import param
from param.parameterized import Event

from relay.history.palette import SEVERITY_COLOURS
from relay.store import AlertFilter
from workbench.alerts import LiveAlert, ReviewUpdate, format_time
from workbench.session import AnalystSession

_PROMPT = "<p class='alert-detail-empty'>Click an alert to see its details.</p>"
VERDICTS: Final[dict[str, dict[str, bool]]] = {
    "reviewed": {"reviewed": True},
    "false positive": {"false_positive": True},
    "unreviewed": {"reviewed": False, "false_positive": False},
}
"""What each review button stores (``Review`` fields)."""


class AlertDetail(pn.viewable.Viewer):
    """A card with :attr:`alert`'s fields and metadata, or a prompt to click an alert."""

    alert = param.ClassSelector(class_=LiveAlert, default=None, doc="The alert shown; None until one is clicked.")

    def __init__(self, session: AnalystSession, **params: Any) -> None:
        super().__init__(**params)  # type: ignore[no-untyped-call]
        self._session = session
        self._snapshot = pn.pane.HTML("", visible=False, width=480, css_classes=["alert-snapshot"])
        self._fields = pn.pane.HTML(_PROMPT, sizing_mode="stretch_width", css_classes=["alert-detail"])
        self._buttons = {
            verdict: pn.widgets.Button(name=label, css_classes=[f"detail-{css}"], visible=False)
            for verdict, label, css in (
                ("reviewed", "✓ Reviewed", "reviewed"),
                ("false positive", "✗ False positive", "false"),
                ("unreviewed", "↺ Unreviewed", "unreviewed"),
            )
        }
        for verdict, button in self._buttons.items():
            button.on_click(partial(self._clicked, verdict))
        self._metadata_title = pn.pane.Markdown("**Metadata**", visible=False)
        self._metadata = pn.pane.JSON({}, depth=-1, visible=False, sizing_mode="stretch_width")
        self._card = pn.Card(
            self._snapshot,
            self._fields,
            pn.Row(*self._buttons.values()),
            self._metadata_title,
            self._metadata,
            title="Alert details",
            collapsible=False,
            sizing_mode="stretch_width",
        )
        session.param.watch(self._update_arrived, "latest_update")
        self._show()  # an alert given at construction is shown too (the watcher fires on changes only)

    def __panel__(self) -> pn.viewable.Viewable:
        return self._card

    @param.depends("alert", watch=True)
    def _show(self) -> None:
        alert = self.alert
        self._fields.object = _PROMPT if alert is None else self._fields_table(alert)
        self._metadata.object = {} if alert is None else alert.metadata
        self._metadata_title.visible = self._metadata.visible = alert is not None
        self._snapshot.object = "" if alert is None else _snapshot_html(alert)
        self._snapshot.visible = alert is not None and alert.has_snapshot
        for verdict, button in self._buttons.items():
            button.visible = alert is not None and alert.verdict != verdict

    def _clicked(self, verdict: str, _event: object) -> None:
        pn.state.execute(partial(self._review, verdict))

    async def _review(self, verdict: str) -> None:
        alert = self.alert
        if alert is not None:
            await self._session.review(AlertFilter(), ids=[alert.id], **VERDICTS[verdict])

    def _update_arrived(self, event: Event) -> None:
        update: ReviewUpdate = event.new
        if self.alert is not None and self.alert.id == update.id:
            self.alert = self.alert.reviewed_as(update)

    def _fields_table(self, alert: LiveAlert) -> str:
        location = alert.metadata.get("location")
        rows = [
            ("Severity", _severity_badge(alert.severity)),
            ("Message", escape(alert.message)),
            ("Stream", escape(self._session.label(alert.stream_id))),
            ("Event time", escape(format_time(alert.event_time) if alert.event_time else f"{alert.timestamp} ms")),
            ("Stored", escape(format_time(alert.created_at))),
            ("Object type", escape(alert.object_type or "–")),
            ("Confidence", "–" if alert.confidence is None else f"{alert.confidence:.2f}"),
            ("Location", escape(_location_text(location))),
            ("Alert id", f"<code>{escape(alert.id)}</code>"),
            ("Ref", escape(alert.ref or "–")),
            ("Review", escape(_review_text(alert))),
        ]
        body = "".join(f"<tr><th>{name}</th><td>{value}</td></tr>" for name, value in rows)
        return f"<table class='alert-detail-table' data-alert-id='{escape(alert.id)}'>{body}</table>"


def _severity_badge(severity: str) -> str:
    colour = SEVERITY_COLOURS.get(severity, "#666")
    return (
        f"<span style='background:{colour};color:#fff;padding:1px 8px;border-radius:8px;font-weight:600'>"
        f"{escape(severity)}</span>"
    )


def _review_text(alert: LiveAlert) -> str:
    if alert.reviewed_by is None or alert.reviewed_at is None:
        return alert.verdict
    return f"{alert.verdict}, by {alert.reviewed_by} at {format_time(alert.reviewed_at)}"


def _snapshot_html(alert: LiveAlert) -> str:
    """The picture with the alert's box over it, in percentages of the picture (see the module docstring)."""
    url = alert.snapshot_url
    if url is None:
        return ""
    box = _box(alert.metadata.get("location"))
    colour = SEVERITY_COLOURS.get(alert.severity, "#666")
    overlay = ""
    if box is not None:
        left, top, width, height = (f"{value * 100:.2f}%" for value in box)
        overlay = (
            f"<div class='snapshot-box' style='position:absolute;left:{left};top:{top};width:{width};"
            f"height:{height};border:2px solid {colour};box-sizing:border-box;pointer-events:none'></div>"
        )
    return (
        f"<div class='snapshot-frame' data-alert-id='{escape(alert.id)}' style='position:relative;line-height:0'>"
        f"<img src='{escape(url)}' alt='the frame of this alert' style='width:100%;height:auto;display:block'>"
        f"{overlay}</div>"
    )


def _box(location: object) -> tuple[float, float, float, float] | None:
    """``metadata.location`` as (x, y, width, height) within the picture, or None if it is not a box."""
    if not isinstance(location, dict):
        return None
    values = [location.get(key) for key in ("x", "y", "width", "height")]
    if not all(isinstance(value, int | float) and not isinstance(value, bool) for value in values):
        return None
    x, y, width, height = (min(max(float(value), 0.0), 1.0) for value in values)  # type: ignore[arg-type]
    return x, y, min(width, 1 - x), min(height, 1 - y)


def _location_text(location: object) -> str:
    if not isinstance(location, dict):
        return "–"
    return ", ".join(f"{key} {value:.2f}" for key, value in location.items() if isinstance(value, int | float))
