"""How streams and alerts look in JSON, the same on REST, WebSocket and exports.

Timestamps are ISO 8601 in UTC with a ``Z`` and millisecond precision, as the
contract fixes them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from relay.store.models import Alert, VideoStream


def iso(moment: datetime | None) -> str | None:
    """``2026-11-25T20:09:14.123Z`` for an aware datetime; None stays None."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    """Parse an ISO 8601 instant; a value without an offset is taken as UTC.

    Raises ValueError for anything else.
    """
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def stream_json(stream: VideoStream) -> dict[str, Any]:
    return {
        "id": stream.id,
        "deviceName": stream.device_name,
        "deviceType": stream.device_type,
        "status": stream.status,
        "lastSeen": iso(stream.last_seen),
        "metadata": stream.meta or {},
        "createdAt": iso(stream.created_at),
    }


def alert_json(alert: Alert) -> dict[str, Any]:
    """An alert as ``GET /api/alerts`` lists it."""
    body = {
        "id": alert.id,
        "streamId": alert.stream_id,
        "severity": alert.severity,
        "message": alert.message,
        "metadata": alert.meta or {},
        "timestamp": alert.timestamp,
        "createdAt": iso(alert.created_at),
    }
    if alert.ref is not None:
        body["ref"] = alert.ref
    return body


def alert_message(alert: Alert) -> dict[str, Any]:
    """An alert as the WebSocket delivers it: the listed form plus ``"type": "alert"``."""
    return {"type": "alert", **alert_json(alert)}


def status_message(stream_id: str, status: str, last_seen: datetime | None) -> dict[str, Any]:
    return {"type": "stream-status", "streamId": stream_id, "status": status, "lastSeen": iso(last_seen)}
