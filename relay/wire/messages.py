"""The vocabulary of ``/api/streams/ws``: message types, limits, client messages, errors.

What a client may send, once parsed (:mod:`relay.wire.parsing` builds these), and
how the relay answers what it rejects: a :class:`ProtocolError` with one of the
contract's error codes, encoded by :func:`error_message`.  Relay → client control
messages are plain dicts encoded by :func:`encode`.  No I/O, nothing of the relay
imported: every rule about message shapes is tested here without a server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

import orjson

VIDEO_FRAME: Final = "video-frame"
ALERT: Final = "alert"
STREAM_STATUS: Final = "stream-status"
ALERT_UPDATED: Final = "alert-updated"
"""Sent to a stream's alert consumers (those that consume ``alert``) when an alert's review changes."""

PRODUCIBLE: Final = frozenset({VIDEO_FRAME, ALERT})
CONSUMABLE: Final = frozenset({VIDEO_FRAME, ALERT, STREAM_STATUS})
SEVERITIES: Final = ("low", "medium", "high", "critical")
STATUSES: Final = ("offline", "online", "streaming")
FRAME_FORMATS: Final = ("json", "binary")

MAX_ALERT_MESSAGE_CHARS: Final = 2000
MAX_ALERT_METADATA_BYTES: Final = 16 * 1024
MAX_BINARY_HEADER_BYTES: Final = 64 * 1024
MAX_ID_CHARS: Final = 128
MAX_REF_CHARS: Final = 200
MAX_CLIENT_TYPE_CHARS: Final = 64
MAX_JSON_DEPTH: Final = 32
"""How deep a client's JSON (alert or stream metadata) may nest: every reader can write it back."""
MAX_TIMESTAMP: Final = 2**63 - 1
"""``timestamp`` values are milliseconds since the epoch in 0 … 2⁶³ − 1 (a 64-bit signed column)."""

DEFAULT_CONTENT_TYPE: Final = "image/jpeg"


ErrorCode = Literal[
    "invalid-json",
    "invalid-message",
    "unknown-type",
    "unauthorized",
    "forbidden",
    "not-registered",
    "rate-limited",
    "too-large",
    "internal",
    "unavailable",
]


class ProtocolError(Exception):
    """A client message the relay rejects; answered with an ``error`` message.

    ``ref`` and ``stream_id`` are echoed in the answer when the rejected message
    carried them, so a client can tell which of its alerts was refused and stop
    resending it.
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        ref: str | None = None,
        stream_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message
        self.ref = ref
        self.stream_id = stream_id


class NotUtf8(ValueError):
    """A text message whose bytes are not UTF-8: not a message the relay can answer.

    RFC 6455 makes this a protocol violation (§8.1): the WebSocket layer fails
    the connection with close code 1007 instead of answering ``invalid-json``.
    """


# --------------------------------------------------------------------------- client messages


# --------------------------------------------------------------------------- messages


@dataclass(slots=True, frozen=True)
class Auth:
    token: str


@dataclass(slots=True, frozen=True)
class Register:
    """A producer (a phone) claims a stream: its frames and alerts, its status."""

    stream_id: str
    client_type: str = "mobile"
    produces: frozenset[str] = frozenset({VIDEO_FRAME})
    consumes: frozenset[str] = frozenset({ALERT})
    since_alert_id: str | None = None
    """Replay the stream's stored alerts after this one before live ones, as on ``subscribe``."""
    token: str | None = None


@dataclass(slots=True, frozen=True)
class Subscribe:
    """A consumer (dashboard, ML service, notebook) attaches to a stream."""

    stream_id: str
    client_type: str = "dashboard"
    consumes: frozenset[str] = CONSUMABLE
    produces: frozenset[str] = frozenset()
    frame_format: Literal["json", "binary"] = "json"
    since_alert_id: str | None = None
    token: str | None = None


@dataclass(slots=True, frozen=True)
class Unsubscribe:
    stream_id: str


@dataclass(slots=True, frozen=True)
class Ping:
    pass


@dataclass(slots=True, frozen=True)
class AlertIn:
    """An alert as a client sends it, validated but not yet stored."""

    stream_id: str
    severity: str
    message: str
    metadata: dict[str, Any] = field(default_factory=dict)
    timestamp: int = 0
    ref: str | None = None
    frame_timestamp: int | None = None
    """The ``timestamp`` of the frame the alert is about (its snapshot), if the client named one."""


# --------------------------------------------------------------------------- relay → client


def encode(message: dict[str, Any]) -> bytes:
    """Encode a relay → client control message as JSON bytes."""
    return orjson.dumps(message)


def error_message(error: ProtocolError) -> bytes:
    """The ``error`` message that answers a rejected client message."""
    body: dict[str, Any] = {"type": "error", "code": error.code, "message": error.message}
    if error.stream_id is not None:
        body["streamId"] = error.stream_id
    if error.ref is not None:
        body["ref"] = error.ref
    return orjson.dumps(body)
