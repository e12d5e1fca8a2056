"""When a detection becomes an alert, and how severe it is.

**Severity.**  A person is ``high``, a face ``medium``, motion ``low``.  Many at
once escalate one step: three or more people ``critical``, three or more faces
``high``, motion in an area over 40 % of the picture ``medium``.

**Cooldown, per stream and kind.**  A person standing in view is detected in
every frame; that must be one alert, not thirty a second.  So detections of one
kind on one stream form an *episode*: it starts with a detection after at least
``cooldown`` seconds without one, and every detection extends it.  An alert is
raised when an episode starts, and again only if it escalates (one person, then
a crowd).  A person who leaves and comes back after the cooldown is a new
alert.

The policy only decides; it keeps the little state that needs (the last
detection and the severity alerted per episode) and never blocks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from detectors import Analysis, Detection

SEVERITIES = ("low", "medium", "high", "critical")
BASE_SEVERITY = {"person": "high", "face": "medium", "motion": "low"}
MANY = 3
"""This many people or faces in one picture escalate the alert one step."""
WIDE_MOTION = 0.4
"""Motion whose box covers more than this fraction of the picture escalates the alert one step."""

_NOUNS = {"person": ("person", "people"), "face": ("face", "faces"), "motion": ("motion", "motion")}


@dataclass(frozen=True, slots=True)
class AlertDraft:
    """An alert to send: the relay's ``severity``, ``message`` and ``metadata``, and the
    ``timestamp`` of the frame it is about (the relay stores that frame with it)."""

    stream_id: str
    severity: str
    message: str
    metadata: dict[str, Any]
    frame_timestamp: int


@dataclass(slots=True)
class _Episode:
    last_seen: float
    severity: str


@dataclass(slots=True)
class AlertPolicy:
    """See the module docstring.  ``cooldown`` in seconds."""

    cooldown: float = 5.0
    _episodes: dict[tuple[str, str], _Episode] = field(default_factory=dict)

    def decide(self, stream_id: str, analysis: Analysis, frame_timestamp: int, now: float) -> list[AlertDraft]:
        """The alerts this picture deserves (often none); ``now`` is a monotonic clock in seconds."""
        by_kind: dict[str, list[Detection]] = {}
        for detection in analysis.detections:
            by_kind.setdefault(detection.kind, []).append(detection)
        drafts = []
        for kind, found in by_kind.items():
            severity = self.severity(kind, found)
            episode = self._episodes.get((stream_id, kind))
            ongoing = episode is not None and now - episode.last_seen < self.cooldown
            if episode is not None and ongoing and SEVERITIES.index(severity) <= SEVERITIES.index(episode.severity):
                episode.last_seen = now  # the same episode, no worse: no new alert
                continue
            drafts.append(self._draft(stream_id, kind, found, severity, analysis, frame_timestamp))
            self._episodes[(stream_id, kind)] = _Episode(now, severity)
        return drafts

    @staticmethod
    def severity(kind: str, found: list[Detection]) -> str:
        base = SEVERITIES.index(BASE_SEVERITY[kind])
        many = found[0].box.area > WIDE_MOTION if kind == "motion" else len(found) >= MANY
        return SEVERITIES[min(base + many, len(SEVERITIES) - 1)]

    @staticmethod
    def _draft(
        stream_id: str, kind: str, found: list[Detection], severity: str, analysis: Analysis, frame_timestamp: int
    ) -> AlertDraft:
        best = max(found, key=lambda d: d.confidence)
        one, several = _NOUNS[kind]
        if kind == "motion":
            message = f"motion in an area of {best.box.area:.0%} of the picture"
        elif len(found) == 1:
            message = f"{one} detected"
        else:
            message = f"{len(found)} {several} detected"
        box = best.box
        metadata = {
            "objectType": kind,
            "confidence": best.confidence,
            "location": {"x": box.x, "y": box.y, "width": box.width, "height": box.height},
            "count": len(found),
            "frameSize": {"width": analysis.width, "height": analysis.height},
            "detector": {"person": "opencv-hog", "face": "opencv-haar-frontalface-alt2", "motion": "opencv-mog2"}[kind],
        }
        return AlertDraft(stream_id, severity, message, metadata, frame_timestamp)
