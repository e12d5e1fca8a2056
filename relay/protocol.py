"""The WebSocket protocol of ``/api/streams/ws``, without I/O.

Text or bytes go in, a typed message or a :class:`ProtocolError` comes out; typed
messages go in, the bytes of a WebSocket message payload come out.  Nothing here
knows about sockets, the database or other connections, so every rule of
``shared/CONTRACT.md`` about message shapes is tested here without a server.

Video frames are the hot path.  A :class:`VideoFrame` keeps the bytes it arrived
in and builds the other form (JSON with base64, or binary with a length-prefixed
JSON header) at most once, however many consumers ask for it.  A frame that
arrived in a form a consumer wants is forwarded as the very bytes that arrived,
unless it lacked a field the relay must fill in (``timestamp``) or carried
fields that must not travel on (anything beyond the frame's own fields).
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import orjson

VIDEO_FRAME: Final = "video-frame"
ALERT: Final = "alert"
STREAM_STATUS: Final = "stream-status"

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

DEFAULT_CONTENT_TYPE: Final = "image/jpeg"

_URL_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_LENGTH = struct.Struct(">I")
_FRAME_KEYS: Final = frozenset({"type", "streamId", "data", "timestamp", "contentType"})
_BINARY_HEADER_KEYS: Final = frozenset({"type", "streamId", "timestamp", "contentType"})

ErrorCode = Literal[
    "invalid-json",
    "invalid-message",
    "unknown-type",
    "unauthorized",
    "forbidden",
    "not-registered",
    "rate-limited",
    "too-large",
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


def now_ms() -> int:
    """The relay's clock in milliseconds since the epoch, the unit of ``timestamp``."""
    return time.time_ns() // 1_000_000


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


class VideoFrame:
    """One video frame, convertible between the JSON and the binary form.

    Built from whichever form arrived; :meth:`json_payload` and
    :meth:`binary_payload` return the payload of a WebSocket message in each form
    and compute it at most once.  ``conversions`` counts how many times a form had
    to be built from the other, which the benchmarks report.
    """

    __slots__ = ("_b64", "_binary", "_jpeg", "_json", "content_type", "stream_id", "timestamp")

    conversions = 0

    def __init__(
        self,
        stream_id: str,
        timestamp: int,
        content_type: str,
        *,
        jpeg: bytes | memoryview | None = None,
        b64: str | None = None,
        json_payload: bytes | None = None,
        binary_payload: bytes | None = None,
    ) -> None:
        self.stream_id = stream_id
        self.timestamp = timestamp
        self.content_type = content_type
        self._jpeg = jpeg
        self._b64 = b64
        self._json = json_payload
        self._binary = binary_payload

    @property
    def jpeg(self) -> bytes | memoryview:
        """The image bytes, decoded from base64 once if the frame came as JSON."""
        if self._jpeg is None:
            assert self._b64 is not None
            self._jpeg = binascii.a2b_base64(self._b64)
        return self._jpeg

    def json_payload(self) -> bytes:
        """The frame as a JSON text message (UTF-8 bytes), built at most once."""
        if self._json is None:
            VideoFrame.conversions += 1
            b64 = self._b64.encode("ascii") if self._b64 is not None else base64.b64encode(self.jpeg)
            self._json = b"".join(
                (
                    b'{"type":"video-frame","streamId":',
                    orjson.dumps(self.stream_id),
                    b',"timestamp":',
                    orjson.dumps(self.timestamp),
                    b',"contentType":',
                    orjson.dumps(self.content_type),
                    b',"data":"',
                    b64,
                    b'"}',
                )
            )
        return self._json

    def binary_payload(self) -> bytes:
        """The frame as a binary message (length, JSON header, image), built at most once."""
        if self._binary is None:
            VideoFrame.conversions += 1
            self._binary = encode_binary_frame(
                self.stream_id, self.jpeg, timestamp=self.timestamp, content_type=self.content_type
            )
        return self._binary


ClientMessage = Auth | Register | Subscribe | Unsubscribe | Ping | AlertIn | VideoFrame


# --------------------------------------------------------------------------- parsing


def parse_text(text: str | bytes, *, received_ms: int | None = None) -> ClientMessage:
    """Parse one text message from a client.

    Raises :class:`ProtocolError` with ``invalid-json`` for text that is not JSON,
    ``invalid-message`` for JSON of the wrong shape and ``unknown-type`` for a
    ``type`` the relay does not know.
    """
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise ProtocolError("invalid-json", "message is not valid JSON") from None
    if not isinstance(obj, dict):
        raise ProtocolError("invalid-message", "message must be a JSON object")
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("invalid-message", "message needs a string 'type'")
    if kind == VIDEO_FRAME:
        return _parse_json_frame(obj, text, received_ms)
    parser = _PARSERS.get(kind)
    if parser is None:
        raise ProtocolError("unknown-type", f"unknown message type {kind[:64]!r}")
    return parser(obj, received_ms)


def parse_binary(data: bytes, *, received_ms: int | None = None) -> VideoFrame:
    """Parse one binary message: a video frame with its length-prefixed JSON header."""
    if len(data) < 4:
        raise ProtocolError("invalid-message", "binary message shorter than its 4-byte header length")
    (header_len,) = _LENGTH.unpack_from(data)
    if header_len == 0 or header_len > MAX_BINARY_HEADER_BYTES or 4 + header_len > len(data):
        raise ProtocolError("invalid-message", f"binary header length {header_len} does not fit the message")
    view = memoryview(data)
    try:
        header = orjson.loads(view[4 : 4 + header_len])
    except orjson.JSONDecodeError:
        raise ProtocolError("invalid-json", "binary frame header is not valid JSON") from None
    if not isinstance(header, dict) or header.get("type") != VIDEO_FRAME:
        raise ProtocolError("invalid-message", "binary messages must be video frames with a JSON object header")
    stream_id = _stream_id(header)
    jpeg = view[4 + header_len :]
    if not jpeg:
        raise ProtocolError("invalid-message", "binary frame has no image bytes", stream_id=stream_id)
    timestamp = _optional_timestamp(header, received_ms)
    content_type = _content_type(header)
    forwardable = "timestamp" in header and header.keys() <= _BINARY_HEADER_KEYS
    return VideoFrame(
        stream_id,
        timestamp,
        content_type,
        jpeg=jpeg,
        binary_payload=data if forwardable else None,
    )


def _parse_json_frame(obj: dict[str, Any], text: str | bytes, received_ms: int | None) -> VideoFrame:
    stream_id = _stream_id(obj)
    data = obj.get("data")
    if not isinstance(data, str) or not data:
        raise ProtocolError("invalid-message", "video-frame needs base64 'data'", stream_id=stream_id)
    timestamp = _optional_timestamp(obj, received_ms)
    forwardable = "timestamp" in obj and obj.keys() <= _FRAME_KEYS
    payload = None
    if forwardable:
        payload = text.encode() if isinstance(text, str) else text
    return VideoFrame(stream_id, timestamp, _content_type(obj), b64=data, json_payload=payload)


def _parse_auth(obj: dict[str, Any], _received_ms: int | None) -> Auth:
    token = obj.get("token")
    if not isinstance(token, str) or not token:
        raise ProtocolError("invalid-message", "auth needs a string 'token'")
    return Auth(token)


def _parse_register(obj: dict[str, Any], _received_ms: int | None) -> Register:
    return Register(
        stream_id=_stream_id(obj),
        client_type=_client_type(obj, "mobile"),
        produces=_message_types(obj, "produces", PRODUCIBLE, frozenset({VIDEO_FRAME})),
        consumes=_message_types(obj, "consumes", CONSUMABLE, frozenset({ALERT})),
        token=_optional_token(obj),
    )


def _parse_subscribe(obj: dict[str, Any], _received_ms: int | None) -> Subscribe:
    stream_id = _stream_id(obj)
    frame_format = obj.get("frameFormat", "json")
    if frame_format not in FRAME_FORMATS:
        raise ProtocolError("invalid-message", "frameFormat must be 'json' or 'binary'", stream_id=stream_id)
    since = obj.get("sinceAlertId")
    if since is not None and not (isinstance(since, str) and _URL_SAFE_ID.fullmatch(since)):
        raise ProtocolError("invalid-message", "sinceAlertId must be an alert id", stream_id=stream_id)
    return Subscribe(
        stream_id=stream_id,
        client_type=_client_type(obj, "dashboard"),
        consumes=_message_types(obj, "consumes", CONSUMABLE, CONSUMABLE),
        produces=_message_types(obj, "produces", PRODUCIBLE, frozenset()),
        frame_format=frame_format,
        since_alert_id=since,
        token=_optional_token(obj),
    )


def _parse_unsubscribe(obj: dict[str, Any], _received_ms: int | None) -> Unsubscribe:
    return Unsubscribe(_stream_id(obj))


def _parse_ping(_obj: dict[str, Any], _received_ms: int | None) -> Ping:
    return Ping()


def _parse_alert(obj: dict[str, Any], received_ms: int | None) -> AlertIn:
    stream_id = _stream_id(obj)
    ref = obj.get("ref")
    if ref is not None and not (isinstance(ref, str) and 0 < len(ref) <= MAX_REF_CHARS):
        raise ProtocolError(
            "invalid-message", f"ref must be a string of 1 to {MAX_REF_CHARS} characters", stream_id=stream_id
        )

    def reject(message: str, code: ErrorCode = "invalid-message") -> ProtocolError:
        return ProtocolError(code, message, ref=ref, stream_id=stream_id)

    severity = obj.get("severity")
    if severity not in SEVERITIES:
        raise reject(f"severity must be one of {', '.join(SEVERITIES)}")
    message = obj.get("message")
    if not isinstance(message, str) or not message.strip():
        raise reject("alert needs a non-empty 'message'")
    if len(message) > MAX_ALERT_MESSAGE_CHARS:
        raise reject(f"alert message longer than {MAX_ALERT_MESSAGE_CHARS} characters", "too-large")
    metadata = obj.get("metadata", {})
    if metadata is None:
        metadata = {}
    problem = alert_metadata_problem(metadata)
    if problem:
        raise reject(problem, "too-large" if "bytes" in problem else "invalid-message")
    try:
        timestamp = _optional_timestamp(obj, received_ms)
    except ProtocolError as exc:
        raise reject(exc.message) from None
    return AlertIn(stream_id, severity, message, metadata, timestamp, ref)


_PARSERS: Final[dict[str, Callable[[dict[str, Any], int | None], ClientMessage]]] = {
    "auth": _parse_auth,
    "register": _parse_register,
    "subscribe": _parse_subscribe,
    "unsubscribe": _parse_unsubscribe,
    "ping": _parse_ping,
    ALERT: _parse_alert,
}


def alert_metadata_problem(metadata: object) -> str | None:
    """Why ``metadata`` is not an acceptable alert metadata object, or None.

    Any JSON object up to 16 KB is accepted; the well-known keys must have their
    documented shape: ``confidence`` a number in [0, 1], ``location`` an object
    of numbers ``x``, ``y`` (and optionally ``width``, ``height``) in [0, 1],
    ``objectType`` a string.
    """
    if not isinstance(metadata, dict):
        return "metadata must be a JSON object"
    if len(orjson.dumps(metadata)) > MAX_ALERT_METADATA_BYTES:
        return f"metadata larger than {MAX_ALERT_METADATA_BYTES} bytes"
    confidence = metadata.get("confidence")
    if confidence is not None and not (_is_number(confidence) and 0 <= confidence <= 1):
        return "metadata.confidence must be a number between 0 and 1"
    location = metadata.get("location")
    if location is not None:
        if not isinstance(location, dict) or "x" not in location or "y" not in location:
            return "metadata.location must be an object with x and y"
        for key in ("x", "y", "width", "height"):
            value = location.get(key)
            if value is not None and not (_is_number(value) and 0 <= value <= 1):
                return f"metadata.location.{key} must be a number between 0 and 1 (normalised)"
    object_type = metadata.get("objectType")
    if object_type is not None and not isinstance(object_type, str):
        return "metadata.objectType must be a string"
    return None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_url_safe_id(value: object) -> bool:
    """Whether ``value`` is a string of 1–128 URL-safe characters, as ids are."""
    return isinstance(value, str) and _URL_SAFE_ID.fullmatch(value) is not None


def _stream_id(obj: dict[str, Any]) -> str:
    stream_id = obj.get("streamId")
    if not is_url_safe_id(stream_id):
        raise ProtocolError("invalid-message", "streamId must be a string of URL-safe characters")
    assert isinstance(stream_id, str)
    return stream_id


def _client_type(obj: dict[str, Any], default: str) -> str:
    client_type = obj.get("clientType", default)
    if not isinstance(client_type, str) or not 0 < len(client_type) <= MAX_CLIENT_TYPE_CHARS:
        raise ProtocolError("invalid-message", "clientType must be a short string")
    return client_type


def _message_types(obj: dict[str, Any], key: str, allowed: frozenset[str], default: frozenset[str]) -> frozenset[str]:
    value = obj.get(key)
    if value is None:
        return default
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ProtocolError("invalid-message", f"{key} must be a list of message types")
    unknown = set(value) - allowed
    if unknown:
        raise ProtocolError(
            "invalid-message",
            f"{key} may list only {', '.join(sorted(allowed))}; got {', '.join(sorted(unknown))}",
        )
    return frozenset(value)


def _optional_token(obj: dict[str, Any]) -> str | None:
    token = obj.get("token")
    if token is not None and not (isinstance(token, str) and token):
        raise ProtocolError("invalid-message", "token must be a string")
    return token


def _optional_timestamp(obj: dict[str, Any], received_ms: int | None) -> int:
    value = obj.get("timestamp")
    if value is None:
        return received_ms if received_ms is not None else now_ms()
    if not _is_number(value) or value < 0:
        raise ProtocolError("invalid-message", "timestamp must be milliseconds since the epoch")
    return int(value)


def _content_type(obj: dict[str, Any]) -> str:
    value = obj.get("contentType", DEFAULT_CONTENT_TYPE)
    if not isinstance(value, str) or not 0 < len(value) <= 100:
        raise ProtocolError("invalid-message", "contentType must be a short string such as image/jpeg")
    return value


# --------------------------------------------------------------------------- encoding


def encode_binary_frame(
    stream_id: str,
    image: bytes | memoryview,
    *,
    timestamp: int | None = None,
    content_type: str = DEFAULT_CONTENT_TYPE,
) -> bytes:
    """Build a binary video-frame message: 4-byte big-endian length, JSON header, image."""
    header = orjson.dumps(
        {
            "type": VIDEO_FRAME,
            "streamId": stream_id,
            "timestamp": now_ms() if timestamp is None else timestamp,
            "contentType": content_type,
        }
    )
    return b"".join((_LENGTH.pack(len(header)), header, image))


def decode_binary_frame(data: bytes) -> tuple[dict[str, Any], memoryview]:
    """Split a binary video-frame message into its header and image bytes (for clients)."""
    (header_len,) = _LENGTH.unpack_from(data)
    view = memoryview(data)
    return orjson.loads(view[4 : 4 + header_len]), view[4 + header_len :]


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
