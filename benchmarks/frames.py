"""The benchmark's video frames: how they are built and how a consumer reads them.

A frame's image bytes start with ``FF D8 FF E0`` (a JPEG's SOI and APP0 markers),
then a big-endian uint32 stream index, a uint32 sequence number and a float64
send time in milliseconds since the epoch, then filler: the layout of
``shared/bench/fanout.js``.  Because the stamp travels inside the image, loss and
latency can be measured whatever form (JSON with base64, or binary) the relay
delivers, and whichever relay converted it.

Building and reading are cheap on purpose, so that the load generator is not
what is measured: the filler and its base64 are made once per stream, and a
consumer decodes only the 21 bytes that hold the stamp.
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass
from typing import Final, Literal

import orjson

FrameForm = Literal["json", "binary"]

MAGIC: Final = b"\xff\xd8\xff\xe0"
STAMP: Final = struct.Struct(">4sIId")
"""Magic, stream index, sequence, send time (ms): the first 20 bytes of every image."""

MIN_FRAME_BYTES: Final = 24
"""The smallest image the generator builds: the stamp plus one base64 group of filler."""

_STAMP_GROUP: Final = 21
"""Stamp plus one filler byte: a whole number of base64 groups (3 bytes → 4 characters)."""

_LENGTH: Final = struct.Struct(">I")
_DATA_KEY: Final = b'"data":"'
_FILLER: Final = 0x5A


class FrameMaker:
    """Builds one stream's frames in one form; only the stamp and header change per frame."""

    def __init__(self, stream_index: int, stream_id: str, frame_bytes: int, form: FrameForm) -> None:
        if frame_bytes < MIN_FRAME_BYTES:
            raise ValueError(f"frames must be at least {MIN_FRAME_BYTES} bytes")
        self.stream_index = stream_index
        self.stream_id = stream_id
        self.form = form
        self._filler = bytes([_FILLER]) * (frame_bytes - STAMP.size)
        # base64(a + b) == base64(a) + base64(b) when len(a) is a multiple of 3.
        self._filler_b64 = base64.b64encode(self._filler[_STAMP_GROUP - STAMP.size :]).decode("ascii")
        self._json_head = '{"type":"video-frame","streamId":' + orjson.dumps(stream_id).decode() + ',"data":"'

    def build(self, sequence: int, sent_ms: float) -> bytes | str:
        """The WebSocket message for frame ``sequence`` stamped ``sent_ms``: bytes (binary) or str (JSON)."""
        stamp = STAMP.pack(MAGIC, self.stream_index, sequence, sent_ms)
        timestamp = int(sent_ms)
        if self.form == "binary":
            header = orjson.dumps(
                {"type": "video-frame", "streamId": self.stream_id, "timestamp": timestamp, "contentType": "image/jpeg"}
            )
            return b"".join((_LENGTH.pack(len(header)), header, stamp, self._filler))
        head = base64.b64encode(stamp + self._filler[:1]).decode("ascii")
        return f'{self._json_head}{head}{self._filler_b64}","timestamp":{timestamp}}}'


@dataclass(frozen=True, slots=True)
class Received:
    """What a consumer learns from one delivered frame."""

    stream_index: int
    sequence: int
    sent_ms: float
    image_bytes: int


def read_frame(message: bytes) -> Received | None:
    """The stamp and image size of a delivered frame, or None for any other message.

    ``message`` is the payload as bytes whether it came as a text or a binary
    WebSocket message: a JSON object starts with ``{``, a binary frame with its
    4-byte header length, whose first byte is 0 for any header under 16 MB.
    Raises ValueError for a frame whose image does not carry the stamp.
    """
    if message[:1] == b"{":
        start = message.find(_DATA_KEY)
        if start < 0:
            return None
        start += len(_DATA_KEY)
        end = message.find(b'"', start)
        encoded = end - start
        padding = message.count(b"=", end - 2, end)
        image_bytes = encoded * 3 // 4 - padding
        stamp = binascii.a2b_base64(message[start : start + 28])
    else:
        (header_len,) = _LENGTH.unpack_from(message)
        offset = 4 + header_len
        image_bytes = len(message) - offset
        stamp = message[offset : offset + STAMP.size]
    if len(stamp) < STAMP.size:
        raise ValueError("frame too short for the benchmark stamp")
    magic, stream_index, sequence, sent_ms = STAMP.unpack_from(stamp)
    if magic != MAGIC:
        raise ValueError("frame without the benchmark stamp")
    return Received(stream_index, sequence, sent_ms, image_bytes)
