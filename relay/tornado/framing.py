"""The frames a client sends most, read without the ``websockets`` parser.

Nearly every frame a client sends is a whole message in one frame: a video
frame or a JSON message, final (FIN), masked, no reserved bit, under the size
limit; or a ping or a pong.  :mod:`relay.tornado.connection` reads those itself, straight from the
bytes the socket gave: :func:`frame_header` says where one starts and ends, and
:func:`unmask` (the library's C helper, or its Python fallback) copies its
payload out of the receive buffer and unmasks it in one pass.  Everything else (close frames, fragments,
anything malformed or over the limit) goes to the library, one whole frame at a
time, so that it is always at a frame boundary when the fast path reads.

That is one copy of each payload where the library made four (into its buffer,
out of it, a slice, the unmasking) and no generator steps, ``Frame`` objects or
event lists per message: measured in ``benchmarks/RESULTS.md`` (issue 12).
"""

from __future__ import annotations

import struct
from typing import Final

try:
    from websockets.speedups import apply_mask as unmask
except ImportError:  # pragma: no cover - the library's wheels have it; a source install may not
    from websockets.utils import apply_mask as unmask

__all__ = ["MAX_CONTROL_PAYLOAD", "PLAIN_BINARY", "PLAIN_PING", "PLAIN_PONG", "PLAIN_TEXT", "frame_header", "unmask"]

PLAIN_TEXT: Final = 0x81
"""First header byte of a final text frame without reserved bits."""
PLAIN_BINARY: Final = 0x82
"""First header byte of a final binary frame without reserved bits."""
PLAIN_PING: Final = 0x89
PLAIN_PONG: Final = 0x8A
"""First header bytes of a ping and a pong without reserved bits (control frames are always final)."""
MAX_CONTROL_PAYLOAD: Final = 125
"""The longest payload of a control frame (RFC 6455 §5.5)."""

_LENGTH_16 = struct.Struct("!H")
_LENGTH_64 = struct.Struct("!Q")


def frame_header(view: memoryview, offset: int, end: int) -> tuple[int, bool, int, int] | None:
    """The frame starting at ``offset``: (first byte, masked, header length with the mask, payload length).

    None while ``view[offset:end]`` does not hold the whole header yet.  Nothing
    is checked: whoever reads the frame decides whether it is one to read here.
    """
    available = end - offset
    if available < 2:
        return None
    second = view[offset + 1]
    length = second & 0x7F
    masked = second >= 0x80
    size = 6 if masked else 2
    if length == 126:
        size += 2
        if available < size:
            return None
        (length,) = _LENGTH_16.unpack_from(view, offset + 2)
    elif length == 127:
        size += 8
        if available < size:
            return None
        (length,) = _LENGTH_64.unpack_from(view, offset + 2)
    elif available < size:
        return None
    return view[offset], masked, size, length
