"""An alert as the workbench shows it, wherever it came from.

Alerts reach a page two ways: rows read from the store (history) and messages the
relay delivered to the page's browser (live).  :class:`LiveAlert` is the one
shape both become, so toasts, the timeline and the detail view need not care.
A message from the browser is input like any other: :meth:`LiveAlert.from_message`
checks it field by field and refuses what the relay would never have sent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from relay.clock import parse_iso
from relay.store.models import Alert
from relay.wire import SEVERITIES, is_url_safe_id


@dataclass(frozen=True, slots=True)
class LiveAlert:
    id: str
    stream_id: str
    severity: str
    message: str
    timestamp: int
    """Event time: milliseconds since the epoch, as the sender stamped it."""
    created_at: datetime
    """When the relay stored it (UTC)."""
    metadata: dict[str, Any] = field(default_factory=dict)
    ref: str | None = None
    has_snapshot: bool = False
    """The relay stored the frame the alert is about (``GET /api/alerts/{id}/snapshot``)."""
    reviewed: bool = False
    false_positive: bool = False
    reviewed_by: str | None = None
    reviewed_at: datetime | None = None

    @property
    def snapshot_url(self) -> str | None:
        """Where the page's browser fetches the alert's picture (with its login cookie), if it has one."""
        return f"/api/alerts/{self.id}/snapshot" if self.has_snapshot else None

    @property
    def verdict(self) -> str:
        """``false positive``, ``reviewed`` or ``unreviewed``: what the analysts made of it."""
        if self.false_positive:
            return "false positive"
        return "reviewed" if self.reviewed else "unreviewed"

    @property
    def event_time(self) -> datetime | None:
        """The sender's time as a UTC datetime; None beyond the years a datetime holds (1–9999).

        The relay accepts any ``timestamp`` of 0 to 2⁶³ − 1 milliseconds, far beyond those years.
        """
        try:
            return datetime.fromtimestamp(self.timestamp / 1000, UTC)
        except (OverflowError, ValueError, OSError):
            return None

    @property
    def confidence(self) -> float | None:
        value = self.metadata.get("confidence")
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    @property
    def object_type(self) -> str | None:
        value = self.metadata.get("objectType")
        return value if isinstance(value, str) else None

    @classmethod
    def from_row(cls, alert: Alert) -> LiveAlert:
        return cls(
            id=alert.id,
            stream_id=alert.stream_id,
            severity=alert.severity,
            message=alert.message,
            timestamp=alert.timestamp,
            created_at=alert.created_at,
            metadata=dict(alert.meta or {}),
            ref=alert.ref,
            has_snapshot=alert.has_snapshot,
            reviewed=alert.reviewed,
            false_positive=alert.false_positive,
            reviewed_by=alert.reviewed_by,
            reviewed_at=alert.reviewed_at,
        )

    @classmethod
    def from_message(cls, message: object) -> LiveAlert:
        """An ``alert`` message as the relay sends it; ValueError says what is wrong with it."""
        if not isinstance(message, dict):
            raise ValueError("an alert must be an object")
        alert_id, stream_id = message.get("id"), message.get("streamId")
        if not isinstance(alert_id, str) or not isinstance(stream_id, str):
            raise ValueError("id and streamId must be strings")
        if not is_url_safe_id(alert_id) or not is_url_safe_id(stream_id):
            raise ValueError("id and streamId must be URL-safe ids")
        severity, text = message.get("severity"), message.get("message")
        if severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}")
        if not isinstance(text, str) or not text:
            raise ValueError("message must be a non-empty string")
        timestamp = message.get("timestamp")
        if not isinstance(timestamp, int | float) or isinstance(timestamp, bool) or not math.isfinite(timestamp):
            raise ValueError("timestamp must be milliseconds since the epoch")
        metadata = message.get("metadata", {})
        if not isinstance(metadata, dict):
            raise ValueError("metadata must be an object")
        ref = message.get("ref")
        if ref is not None and not isinstance(ref, str):
            raise ValueError("ref must be a string")
        created = message.get("createdAt")
        if not isinstance(created, str):
            raise ValueError("createdAt must be an ISO 8601 time")
        flags = {name: message.get(name, False) for name in ("hasSnapshot", "reviewed", "falsePositive")}
        if not all(isinstance(value, bool) for value in flags.values()):
            raise ValueError("hasSnapshot, reviewed and falsePositive must be true or false")
        reviewed_by, reviewed_at = _reviewer(message)
        return cls(
            id=alert_id,
            stream_id=stream_id,
            severity=severity,
            message=text,
            timestamp=int(timestamp),
            created_at=parse_iso(created),
            metadata=metadata,
            ref=ref,
            has_snapshot=flags["hasSnapshot"],
            reviewed=flags["reviewed"],
            false_positive=flags["falsePositive"],
            reviewed_by=reviewed_by,
            reviewed_at=reviewed_at,
        )

    def reviewed_as(self, update: ReviewUpdate) -> LiveAlert:
        """This alert as an ``alert-updated`` message says it is now."""
        return replace(
            self,
            reviewed=update.reviewed,
            false_positive=update.false_positive,
            reviewed_by=update.reviewed_by,
            reviewed_at=update.reviewed_at,
        )


@dataclass(frozen=True, slots=True)
class ReviewUpdate:
    """An ``alert-updated`` message: an analyst (in any tab, on any node) changed an alert's review."""

    id: str
    stream_id: str
    reviewed: bool
    false_positive: bool
    reviewed_by: str | None
    reviewed_at: datetime | None

    @classmethod
    def from_message(cls, message: object) -> ReviewUpdate:
        """An ``alert-updated`` message as the relay sends it; ValueError says what is wrong with it."""
        if not isinstance(message, dict):
            raise ValueError("an update must be an object")
        alert_id, stream_id = message.get("id"), message.get("streamId")
        if not isinstance(alert_id, str) or not isinstance(stream_id, str):
            raise ValueError("id and streamId must be strings")
        if not is_url_safe_id(alert_id) or not is_url_safe_id(stream_id):
            raise ValueError("id and streamId must be URL-safe ids")
        reviewed, false_positive = message.get("reviewed"), message.get("falsePositive")
        if not isinstance(reviewed, bool) or not isinstance(false_positive, bool):
            raise ValueError("reviewed and falsePositive must be true or false")
        reviewed_by, reviewed_at = _reviewer(message)
        return cls(alert_id, stream_id, reviewed, false_positive, reviewed_by, reviewed_at)


def _reviewer(message: dict[str, Any]) -> tuple[str | None, datetime | None]:
    """``reviewedBy`` and ``reviewedAt`` of a message (both absent or null for an alert never reviewed)."""
    by, at = message.get("reviewedBy"), message.get("reviewedAt")
    if by is not None and not isinstance(by, str):
        raise ValueError("reviewedBy must be a string")
    if at is not None and not isinstance(at, str):
        raise ValueError("reviewedAt must be an ISO 8601 time")
    return by, None if at is None else parse_iso(at)


def format_time(moment: datetime) -> str:
    """``2026-11-25 20:09:14.123 UTC``: how the workbench writes a time."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"
