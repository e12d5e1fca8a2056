"""Video frames and their two forms on the wire, built at most once each.

Video frames are the hot path.  A :class:`VideoFrame` keeps the bytes it arrived
in and builds the other form (JSON with base64, or binary with a length-prefixed
JSON header, :func:`encode_binary_frame`) at most once, however many consumers
ask for it.  A frame that arrived in a form a consumer wants is forwarded as the
very bytes that arrived, unless it lacked a field the relay must fill in
(``timestamp``) or carried fields that must not travel on (anything beyond the
frame's own fields): :mod:`relay.wire.parsing` decides which.
"""

from __future__ import annotations

import base64
import binascii
import struct
from typing import Any, Final

import orjson

from relay.clock import now_ms
from relay.wire.messages import DEFAULT_CONTENT_TYPE, VIDEO_FRAME

LENGTH: Final = struct.Struct(">I")
"""The 4-byte big-endian length of a binary frame's JSON header."""


class VideoFrame:
    """One video frame, convertible between the JSON and the binary form.

    Built from whichever form arrived; :meth:`json_payload` and
    :meth:`binary_payload` return the payload of a WebSocket message in each form
    and compute it at most once.  ``conversions`` counts how many times a form had
    to be built from the other, which the benchmarks report.
    """

    __slots__ = (
        "_b64",
        "_binary",
        "_image_at",
        "_jpeg",
        "_json",
        "_received",
        "content_type",
        "size",
        "stream_id",
        "timestamp",
    )

    conversions = 0

    def __init__(
        self,
        stream_id: str,
        timestamp: int,
        content_type: str,
        jpeg: bytes | memoryview | None = None,
        b64: str | None = None,
        json_payload: bytes | None = None,
        binary_payload: bytes | None = None,
    ) -> None:
        self.stream_id = stream_id
        self.timestamp = timestamp
        self.content_type = content_type
        self._jpeg = jpeg
        self._received: bytes | None = None  # the binary message it came in, whose image is not sliced until asked for
        self._image_at = 0  # where in it the image starts
        self._b64 = b64
        self._json = json_payload
        self._binary = binary_payload
        self.size = len(jpeg) if jpeg is not None else _decoded_size(b64)
        """The image's size in bytes (a JSON frame's base64 is not decoded for it).  An attribute, not
        a property: the snapshot buffer reads it twice per frame, and it must not change once the
        base64 is decoded (the buffer subtracts what it added)."""

    @property
    def jpeg(self) -> bytes | memoryview:
        """The image bytes: a view of the binary message it came in, or decoded from base64 once if it came as JSON."""
        if self._jpeg is None:
            if self._received is not None:
                self._jpeg = memoryview(self._received)[self._image_at :]
            else:
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


_new = object.__new__


def received_binary(
    stream_id: str, timestamp: int, content_type: str, message: bytes, image_at: int, forwardable: bool
) -> VideoFrame:
    """A frame that came as the binary ``message``, its image from ``image_at`` on (``forwardable``: as it came).

    What ``VideoFrame(stream_id, timestamp, content_type, memoryview(message)[image_at:],
    binary_payload=message if forwardable else None)`` makes, without a call of ``__init__``,
    for the reason of :func:`relay.wire.envelope.frame_envelope` (one is made per binary
    message), and without the image's view until someone asks for it (most frames are
    only forwarded; a memoryview and its slice were about 0.9k instructions per frame).
    """
    frame = _new(VideoFrame)
    frame.stream_id = stream_id
    frame.timestamp = timestamp
    frame.content_type = content_type
    frame._jpeg = None
    frame._received = message
    frame._image_at = image_at
    frame._b64 = None
    frame._json = None
    frame._binary = message if forwardable else None
    frame.size = len(message) - image_at
    return frame


def _decoded_size(b64: str | None) -> int:
    """The bytes that padded base64 decodes to, without decoding it."""
    assert b64 is not None, "a frame has its image in one form or the other"
    return len(b64) * 3 // 4 - (2 if b64.endswith("==") else 1 if b64.endswith("=") else 0)


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
    return b"".join((LENGTH.pack(len(header)), header, image))


def decode_binary_frame(data: bytes) -> tuple[dict[str, Any], memoryview]:
    """Split a binary video-frame message into its header and image bytes (for clients)."""
    (header_len,) = LENGTH.unpack_from(data)
    view = memoryview(data)
    return orjson.loads(view[4 : 4 + header_len]), view[4 + header_len :]
