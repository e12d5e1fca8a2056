"""An alert as the workbench shows it, wherever it came from.

Alerts reach a page two ways: rows read from the store (history) and messages the
relay delivered to the page's browser (live).  :class:`LiveAlert` is the one
shape both become, so toasts, the timeline and the detail view need not care.
A message from the browser is input like any other: :meth:`LiveAlert.from_message`
checks it field by field and refuses what the relay would never have sent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
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
    """Whether the relay stored a frame with it (``GET /api/alerts/{id}/snapshot``)."""

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
            has_snapshot=bool(alert.has_snapshot),
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
        return cls(
            id=alert_id,
            stream_id=stream_id,
            severity=severity,
            message=text,
            timestamp=int(timestamp),
            created_at=parse_iso(created),
            metadata=metadata,
            ref=ref,
            has_snapshot=message.get("hasSnapshot") is True,
        )


def format_time(moment: datetime) -> str:
    """``2026-11-25 20:09:14.123 UTC``: how the workbench writes a time."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"
