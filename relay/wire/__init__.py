"""The relay's wire format, without I/O: what travels on ``/api/streams/ws``.

- :mod:`relay.wire.messages`: message types, limits, the client messages once
  parsed, error codes, relay → client control messages;
- :mod:`relay.wire.parsing`: text or bytes in, a typed message or a
  :class:`~relay.wire.messages.ProtocolError` out;
- :mod:`relay.wire.video`: video frames in their JSON and binary forms;
- :mod:`relay.wire.frames`: server → client WebSocket frames and the close codes;
- :mod:`relay.wire.envelope`: one message on its way from the router to the hubs.

Nothing here imports the rest of the relay (but the leaf :mod:`relay.clock`).
"""

from relay.wire.frames import CloseCode, Wire, websocket_frame
from relay.wire.messages import (
    ALERT,
    ALERT_UPDATED,
    CONSUMABLE,
    DEFAULT_CONTENT_TYPE,
    PRODUCIBLE,
    SEVERITIES,
    STATUSES,
    STREAM_STATUS,
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
    encode,
    error_message,
)
from relay.wire.parsing import (
    ClientMessage,
    alert_metadata_problem,
    is_url_safe_id,
    json_problem,
    parse_binary,
    parse_text,
    text_problem,
)
from relay.wire.video import VideoFrame, decode_binary_frame, encode_binary_frame

__all__ = [
    "ALERT",
    "ALERT_UPDATED",
    "CONSUMABLE",
    "DEFAULT_CONTENT_TYPE",
    "PRODUCIBLE",
    "SEVERITIES",
    "STATUSES",
    "STREAM_STATUS",
    "VIDEO_FRAME",
    "AlertIn",
    "Auth",
    "ClientMessage",
    "CloseCode",
    "ErrorCode",
    "NotUtf8",
    "Ping",
    "ProtocolError",
    "Register",
    "Subscribe",
    "Unsubscribe",
    "VideoFrame",
    "Wire",
    "alert_metadata_problem",
    "decode_binary_frame",
    "encode",
    "encode_binary_frame",
    "error_message",
    "is_url_safe_id",
    "json_problem",
    "parse_binary",
    "parse_text",
    "text_problem",
    "websocket_frame",
]
