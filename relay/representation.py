"""How streams and alerts look in JSON, the same on REST, WebSocket and exports.

Times are written by :func:`relay.clock.iso`: ISO 8601 in UTC with a ``Z`` and
millisecond precision, as the contract fixes them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from relay.clock import iso
from relay.store.models import Alert, VideoStream


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
    """An alert as ``GET /api/alerts`` lists it: optional fields only when they are set."""
    body = {
        "id": alert.id,
        "streamId": alert.stream_id,
        "severity": alert.severity,
        "message": alert.message,
        "metadata": alert.meta or {},
        "timestamp": alert.timestamp,
        "createdAt": iso(alert.created_at),
        "hasSnapshot": bool(alert.has_snapshot),
        "reviewed": bool(alert.reviewed),
        "falsePositive": bool(alert.false_positive),
        "keep": bool(alert.keep),
    }
    if alert.ref is not None:
        body["ref"] = alert.ref
    if alert.frame_timestamp is not None:
        body["frameTimestamp"] = alert.frame_timestamp
    if alert.reviewed_by is not None:
        body["reviewedBy"] = alert.reviewed_by
        body["reviewedAt"] = iso(alert.reviewed_at)
    if alert.note is not None:
        body["note"] = alert.note
    return body


def alert_updated_message(alert: Alert) -> dict[str, Any]:
    """What the stream's alert consumers are told when an alert's review changes."""
    return {
        "type": "alert-updated",
        "id": alert.id,
        "streamId": alert.stream_id,
        "reviewed": bool(alert.reviewed),
        "falsePositive": bool(alert.false_positive),
        "reviewedBy": alert.reviewed_by,
        "reviewedAt": iso(alert.reviewed_at),
    }


def alert_message(alert: Alert) -> dict[str, Any]:
    """An alert as the WebSocket delivers it: the listed form plus ``"type": "alert"``."""
    return {"type": "alert", **alert_json(alert)}


def status_message(stream_id: str, status: str, last_seen: datetime | None) -> dict[str, Any]:
    return {"type": "stream-status", "streamId": stream_id, "status": status, "lastSeen": iso(last_seen)}
