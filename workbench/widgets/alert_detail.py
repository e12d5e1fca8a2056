"""The detail view of one alert: its fields and all of its metadata.

Shared by the timeline (click a point) and the history (click a row), which set
:attr:`AlertDetail.alert`.  Every value shown comes from an ML service, so it is
escaped, never rendered as HTML.
"""

from __future__ import annotations

from html import escape
from typing import Any

import panel as pn
import param

from relay.history.palette import SEVERITY_COLOURS
from workbench.alerts import LiveAlert, format_time
from workbench.session import AnalystSession

_PROMPT = "<p class='alert-detail-empty'>Click an alert to see its details.</p>"


class AlertDetail(pn.viewable.Viewer):
    """A card with :attr:`alert`'s fields and metadata, or a prompt to click an alert."""

    alert = param.ClassSelector(class_=LiveAlert, default=None, doc="The alert shown; None until one is clicked.")

    def __init__(self, session: AnalystSession, **params: Any) -> None:
        super().__init__(**params)  # type: ignore[no-untyped-call]
        self._session = session
        self._fields = pn.pane.HTML(_PROMPT, sizing_mode="stretch_width", css_classes=["alert-detail"])
        self._metadata_title = pn.pane.Markdown("**Metadata**", visible=False)
        self._metadata = pn.pane.JSON({}, depth=-1, visible=False, sizing_mode="stretch_width")
        self._card = pn.Card(
            self._fields,
            self._metadata_title,
            self._metadata,
            title="Alert details",
            collapsible=False,
            sizing_mode="stretch_width",
        )
        self._show()  # an alert given at construction is shown too (the watcher fires on changes only)

    def __panel__(self) -> pn.viewable.Viewable:
        return self._card

    @param.depends("alert", watch=True)
    def _show(self) -> None:
        alert = self.alert
        self._fields.object = _PROMPT if alert is None else self._fields_table(alert)
        self._metadata.object = {} if alert is None else alert.metadata
        self._metadata_title.visible = self._metadata.visible = alert is not None

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
        ]
        body = "".join(f"<tr><th>{name}</th><td>{value}</td></tr>" for name, value in rows)
        return f"<table class='alert-detail-table' data-alert-id='{escape(alert.id)}'>{body}</table>"


def _severity_badge(severity: str) -> str:
    colour = SEVERITY_COLOURS.get(severity, "#666")
    return (
        f"<span style='background:{colour};color:#fff;padding:1px 8px;border-radius:8px;font-weight:600'>"
        f"{escape(severity)}</span>"
    )


def _location_text(location: object) -> str:
    if not isinstance(location, dict):
        return "–"
    return ", ".join(f"{key} {value:.2f}" for key, value in location.items() if isinstance(value, int | float))
