"""Parsing what clients send: text or bytes in, a typed message or a :class:`ProtocolError` out.

Every rule of the contract about the shape of a client message lives here and
is tested without a server.  A text message is parsed in full (orjson), so that
nothing malformed is forwarded; a binary message is a video frame whose JSON
header alone is parsed, and whose image bytes are kept as the very buffer they
arrived in.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Container
from typing import Any, Final

import orjson

from relay.clock import now_ms
from relay.wire.messages import (
    ALERT,
    CONSUMABLE,
    DEFAULT_CONTENT_TYPE,
    FRAME_FORMATS,
    MAX_ALERT_MESSAGE_CHARS,
    MAX_ALERT_METADATA_BYTES,
    MAX_BINARY_HEADER_BYTES,
    MAX_CLIENT_TYPE_CHARS,
    MAX_JSON_DEPTH,
    MAX_REF_CHARS,
    MAX_TIMESTAMP,
    PRODUCIBLE,
    SEVERITIES,
    VIDEO_FRAME,
    AlertIn,
    Auth,
    ErrorCode,
    NotUtf8,
    Ping,
    ProtocolError,
    Register,
    Subscribe,
    Unsubscribe,
)
from relay.wire.video import LENGTH, VideoFrame, received_binary

_URL_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_BASE64_ALPHABET: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_TWO_63: Final = 2**63
MAX_CONTENT_TYPE_CHARS: Final = 100
_FRAME_KEYS: Final = frozenset({"type", "streamId", "data", "timestamp", "contentType"})

ClientMessage = Auth | Register | Subscribe | Unsubscribe | Ping | AlertIn | VideoFrame


def parse_text(text: str | bytes, *, received_ms: int | None = None) -> ClientMessage:
    """Parse one text message from a client.

    Raises :class:`ProtocolError` with ``invalid-json`` for text that is not JSON,
    ``invalid-message`` for JSON of the wrong shape and ``unknown-type`` for a
    ``type`` the relay does not know; :class:`NotUtf8` for bytes that are not
    text at all (orjson checks UTF-8 as it parses, so valid messages pay nothing
    for it).
    """
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:
        if isinstance(text, bytes) and not _is_utf8(text):
            raise NotUtf8("text message is not UTF-8") from None
        raise ProtocolError("invalid-json", "message is not valid JSON") from None
    if not isinstance(obj, dict):
        raise ProtocolError("invalid-message", "message must be a JSON object")
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("invalid-message", "message needs a string 'type'")
    if kind == VIDEO_FRAME:
        return _parse_json_frame(obj, text, received_ms)
    parser = PARSERS.get(kind)
    if parser is None:
        raise ProtocolError("unknown-type", f"unknown message type {kind[:64]!r}")
    return parser(obj, received_ms)


def parse_binary(data: bytes, *, received_ms: int | None = None, known_ids: Container[str] = frozenset()) -> VideoFrame:
    """Parse one binary message: a video frame with its length-prefixed JSON header.

    ``known_ids`` are stream ids the caller has seen pass these checks already
    (a connection's permits): one of them is not matched against the pattern
    again, which was the dearest check of a frame's header.
    """
    size = len(data)
    if size < 4:
        raise ProtocolError("invalid-message", "binary message shorter than its 4-byte header length")
    (header_len,) = LENGTH.unpack_from(data)
    image_at = 4 + header_len
    if header_len == 0 or header_len > MAX_BINARY_HEADER_BYTES or image_at > size:
        raise ProtocolError("invalid-message", f"binary header length {header_len} does not fit the message")
    try:
        header = orjson.loads(data[4:image_at])  # a copy of a short header costs less than a view of it
    except orjson.JSONDecodeError:
        raise ProtocolError("invalid-json", "binary frame header is not valid JSON") from None
    if not isinstance(header, dict) or header.get("type") != VIDEO_FRAME:
        raise ProtocolError("invalid-message", "binary messages must be video frames with a JSON object header")
    # The checks of _stream_id, _optional_timestamp and _content_type, inline for the header every
    # frame has (a valid id, an integer timestamp, a short content type): three calls less per frame.
    # Anything else goes through those functions, which accept or refuse it as ever.
    stream_id = header.get("streamId")
    if not isinstance(stream_id, str) or (stream_id not in known_ids and _URL_SAFE_ID.fullmatch(stream_id) is None):
        stream_id = _stream_id(header)
    if image_at == size:
        raise ProtocolError("invalid-message", "binary frame has no image bytes", stream_id=stream_id)
    timestamp: Any = header.get("timestamp")  # (narrowed by forwardable, which mypy does not follow)
    # Forwarded as it came only with an integer timestamp (a null or fractional one is not what the
    # frame is taken for), and with no field but the four (type, streamId and timestamp are there: a
    # fourth key must be contentType).  Counting is cheaper than comparing its keys with a set.
    forwardable = type(timestamp) is int
    if not forwardable or not 0 <= timestamp <= MAX_TIMESTAMP:
        timestamp = _optional_timestamp(header, received_ms)
    content_type = header.get("contentType", DEFAULT_CONTENT_TYPE)
    if type(content_type) is not str or not 0 < len(content_type) <= MAX_CONTENT_TYPE_CHARS:
        content_type = _content_type(header)
    forwardable = forwardable and len(header) - ("contentType" in header) == 3
    return received_binary(stream_id, timestamp, content_type, data, image_at, forwardable)


def _parse_json_frame(obj: dict[str, Any], text: str | bytes, received_ms: int | None) -> VideoFrame:
    stream_id = _stream_id(obj)
    data = obj.get("data")
    if not isinstance(data, str) or not data or not _is_base64(data):
        raise ProtocolError("invalid-message", "video-frame needs base64 'data'", stream_id=stream_id)
    timestamp = _optional_timestamp(obj, received_ms)
    forwardable = type(obj.get("timestamp")) is int and obj.keys() <= _FRAME_KEYS  # (see parse_binary)
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
    stream_id = _stream_id(obj)
    return Register(
        stream_id=stream_id,
        client_type=_client_type(obj, "mobile"),
        produces=_message_types(obj, "produces", PRODUCIBLE, frozenset({VIDEO_FRAME})),
        consumes=_message_types(obj, "consumes", CONSUMABLE, frozenset({ALERT})),
        since_alert_id=_since_alert_id(obj, stream_id),
        token=_optional_token(obj),
    )


def _parse_subscribe(obj: dict[str, Any], _received_ms: int | None) -> Subscribe:
    stream_id = _stream_id(obj)
    frame_format = obj.get("frameFormat", "json")
    if frame_format not in FRAME_FORMATS:
        raise ProtocolError("invalid-message", "frameFormat must be 'json' or 'binary'", stream_id=stream_id)
    since = _since_alert_id(obj, stream_id)
    return Subscribe(
        stream_id=stream_id,
        client_type=_client_type(obj, "dashboard"),
        consumes=_message_types(obj, "consumes", CONSUMABLE, CONSUMABLE),
        produces=_message_types(obj, "produces", PRODUCIBLE, frozenset()),
        frame_format=frame_format,
        since_alert_id=since,
        token=_optional_token(obj),
    )


def _since_alert_id(obj: dict[str, Any], stream_id: str) -> str | None:
    since = obj.get("sinceAlertId")
    if since is not None and not (isinstance(since, str) and _URL_SAFE_ID.fullmatch(since)):
        raise ProtocolError("invalid-message", "sinceAlertId must be an alert id", stream_id=stream_id)
    return since


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
    if "\x00" in message or (ref is not None and "\x00" in ref):
        raise reject("message and ref may not contain NUL characters")
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
    frame_timestamp = obj.get("frameTimestamp")
    if frame_timestamp is not None and not (_is_number(frame_timestamp) and 0 <= frame_timestamp <= MAX_TIMESTAMP):
        raise reject(f"frameTimestamp must be the timestamp of a frame: milliseconds from 0 to {MAX_TIMESTAMP}")
    return AlertIn(
        stream_id,
        severity,
        message,
        metadata,
        timestamp,
        ref,
        frame_timestamp=None if frame_timestamp is None else int(frame_timestamp),
    )


PARSERS: Final[dict[str, Callable[[dict[str, Any], int | None], ClientMessage]]] = {
    "auth": _parse_auth,
    "register": _parse_register,
    "subscribe": _parse_subscribe,
    "unsubscribe": _parse_unsubscribe,
    "ping": _parse_ping,
    ALERT: _parse_alert,
}


def alert_metadata_problem(metadata: object) -> str | None:
    """Why ``metadata`` is not an acceptable alert metadata object, or None.

    Any JSON object up to 16 KB that :func:`json_problem` accepts; the well-known
    keys must have their documented shape: ``confidence`` a number in [0, 1],
    ``location`` an object of numbers ``x``, ``y`` (and optionally ``width``,
    ``height``) in [0, 1], ``objectType`` a string.
    """
    if not isinstance(metadata, dict):
        return "metadata must be a JSON object"
    problem = json_problem(metadata, "metadata")
    if problem is not None:
        return problem
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


def json_problem(value: object, what: str) -> str | None:
    """Why a client's JSON value could not be stored and read back everywhere, or None.

    Every database and every reader (REST, exports, the workbench, the report)
    must take what the relay accepted: so no nesting deeper than
    :data:`MAX_JSON_DEPTH` (JSON encoders stop at a few hundred), no number of
    2⁶³ or more in magnitude (orjson cannot write such an integer back, and
    PostgreSQL's JSONB gives a large float back as an integer), and no NUL
    character in a key or a string (PostgreSQL cannot store one).  Lone
    surrogates cannot occur: orjson refuses them as it parses.
    """
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                return f"{what} nests deeper than {MAX_JSON_DEPTH} levels"
            children = item.values() if isinstance(item, dict) else item
            if isinstance(item, dict) and any("\x00" in key for key in item):
                return f"{what} may not contain NUL characters"
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(item, str):
            if "\x00" in item:
                return f"{what} may not contain NUL characters"
        elif isinstance(item, int | float) and not isinstance(item, bool) and not -_TWO_63 < item < _TWO_63:
            return f"{what} may hold numbers of less than 2**63 in magnitude"
    return None


def text_problem(text: str, what: str) -> str | None:
    """Why a client's text could not be stored everywhere (a NUL character), or None."""
    return f"{what} may not contain NUL characters" if "\x00" in text else None


def _is_base64(data: str) -> bool:
    """Whether ``data`` is base64 (standard alphabet, padded): the form a JSON frame's image travels in.

    Checked before the frame goes anywhere, so that no consumer gets what it
    cannot decode and the relay's own conversion to binary cannot fail.
    ``bytes.translate`` drops every alphabet byte at C speed (0.3 ns a byte).
    """
    if not data.isascii() or len(data) % 4:
        return False
    body = data.encode("ascii").rstrip(b"=")
    return len(data) - len(body) <= 2 and not body.translate(None, _BASE64_ALPHABET)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


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
    if not _is_number(value) or not 0 <= value <= MAX_TIMESTAMP:
        raise ProtocolError(
            "invalid-message", f"timestamp must be milliseconds since the epoch, from 0 to {MAX_TIMESTAMP}"
        )
    return int(value)


def _content_type(obj: dict[str, Any]) -> str:
    value = obj.get("contentType", DEFAULT_CONTENT_TYPE)
    if not isinstance(value, str) or not 0 < len(value) <= MAX_CONTENT_TYPE_CHARS:
        raise ProtocolError("invalid-message", "contentType must be a short string such as image/jpeg")
    return value
