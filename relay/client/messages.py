"""What the relay sends a client, as typed values.

:func:`parse_message` turns one WebSocket message into a :class:`Frame`,
:class:`Alert`, :class:`StreamStatus` or :class:`ErrorReport` (what an
application sees), or a :class:`Control` (``auth-ok``, ``registered``,
``alert-stored``, … which the client handles itself).  Unknown message types
and unknown fields are ignored, as ``docs/API.md`` asks of clients: the relay
may add some.
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from relay.client.errors import RelayProtocolError
from relay.wire import DEFAULT_CONTENT_TYPE, decode_binary_frame

if TYPE_CHECKING:
    from relay.client.images import Image


@dataclass(frozen=True, slots=True)
class Frame:
    """One video frame: the image bytes (JPEG unless ``content_type`` says otherwise).

    :meth:`image` decodes it to a numpy array (BGR) on request; numpy and OpenCV
    are imported only then.
    """

    stream_id: str
    timestamp: int
    data: bytes
    content_type: str = DEFAULT_CONTENT_TYPE

    def image(self) -> Image:
        from relay.client.images import decode_jpeg

        return decode_jpeg(self.data)


@dataclass(frozen=True, slots=True)
class Alert:
    """A stored alert, live or replayed: ``id`` and ``created_at`` come from the relay.

    ``frame_timestamp`` is the frame its sender named; ``has_snapshot`` says the relay
    stored a frame with it (``GET /api/alerts/{id}/snapshot``); ``reviewed`` and
    ``false_positive`` are the analysts' review as it was when the alert was sent.
    """

    id: str
    stream_id: str
    severity: str
    message: str
    metadata: dict[str, Any]
    timestamp: int
    created_at: str
    ref: str | None = None
    frame_timestamp: int | None = None
    has_snapshot: bool = False
    reviewed: bool = False
    false_positive: bool = False

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Alert:
        """An alert as the WebSocket (``type: alert``) or ``GET /api/alerts`` shows it."""
        try:
            return cls(
                id=str(body["id"]),
                stream_id=str(body["streamId"]),
                severity=str(body["severity"]),
                message=str(body["message"]),
                metadata=dict(body.get("metadata") or {}),
                timestamp=int(body["timestamp"]),
                created_at=str(body["createdAt"]),
                ref=body.get("ref"),
                frame_timestamp=None if body.get("frameTimestamp") is None else int(body["frameTimestamp"]),
                has_snapshot=body.get("hasSnapshot") is True,
                reviewed=body.get("reviewed") is True,
                false_positive=body.get("falsePositive") is True,
            )
        except (KeyError, TypeError, ValueError) as error:
            raise RelayProtocolError(f"malformed alert from the relay ({error!r}): {body}") from None


@dataclass(frozen=True, slots=True)
class StreamStatus:
    """A stream went ``offline``, ``online`` or ``streaming`` (``last_seen`` ISO 8601)."""

    stream_id: str
    status: str
    last_seen: str | None


@dataclass(frozen=True, slots=True)
class ErrorReport:
    """An ``error`` the relay sent that no call of this client was waiting for.

    For instance ``rate-limited`` for frames, or an alert refused for good
    (then ``ref`` names it).  The connection stays open.
    """

    code: str
    message: str
    stream_id: str | None = None
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Control:
    """A message the client handles itself: ``auth-ok``, ``registered``, ``alert-stored``, ``pong``, …"""

    type: str
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def stream_id(self) -> str | None:
        value = self.body.get("streamId")
        return value if isinstance(value, str) else None


Message = Frame | Alert | StreamStatus | ErrorReport
"""What an application receives from :class:`~relay.client.RelayClient`."""


def parse_message(raw: str | bytes) -> Message | Control | None:
    """One WebSocket message from the relay; None for a type this client does not know.

    ``bytes`` is a binary message (a video frame), ``str`` a JSON text message.
    Raises :class:`RelayProtocolError` for a message that cannot be read.
    """
    if isinstance(raw, bytes):
        return _binary_frame(raw)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise RelayProtocolError(f"the relay sent text that is not JSON: {raw[:80]!r}") from None
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        raise RelayProtocolError(f"the relay sent a message without a type: {raw[:80]!r}")
    kind = body["type"]
    try:
        if kind == "video-frame":
            return Frame(
                stream_id=body["streamId"],
                timestamp=int(body["timestamp"]),
                data=base64.b64decode(body["data"], validate=True),
                content_type=body.get("contentType", DEFAULT_CONTENT_TYPE),
            )
        if kind == "alert":
            return Alert.from_json(body)
        if kind == "stream-status":
            return StreamStatus(body["streamId"], body["status"], body.get("lastSeen"))
        if kind == "error":
            return ErrorReport(str(body.get("code")), str(body.get("message")), body.get("streamId"), body.get("ref"))
    except (KeyError, TypeError, ValueError, binascii.Error) as error:
        raise RelayProtocolError(f"malformed {kind} from the relay ({error!r})") from None
    if kind in _CONTROL_TYPES:
        return Control(kind, body)
    return None


_CONTROL_TYPES = frozenset({"auth-ok", "registered", "subscribed", "unsubscribed", "alert-stored", "pong"})


def _binary_frame(raw: bytes) -> Frame:
    try:
        header, image = decode_binary_frame(raw)
        return Frame(
            stream_id=header["streamId"],
            timestamp=int(header["timestamp"]),
            data=bytes(image),
            content_type=header.get("contentType", DEFAULT_CONTENT_TYPE),
        )
    except (KeyError, TypeError, ValueError, struct.error) as error:
        raise RelayProtocolError(f"malformed binary frame from the relay ({error!r})") from None
