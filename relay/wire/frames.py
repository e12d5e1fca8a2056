"""Server → client WebSocket frames, built once and shared, and the close codes.

Server frames are not masked (RFC 6455 §5.1), so the bytes of one message are
the same for every consumer: :func:`websocket_frame` builds them once and the
outbox writes them to every socket that wants them.  Header and payload stay
two buffers (a :data:`Wire`), written with scatter-gather I/O, so a frame's
bytes are never copied to prepend a header.

Parsing what clients send (masking, fragments, control frames, close codes) is
not done here: the ``websockets`` library's sans-I/O protocol does it (see
:mod:`relay.tornado.connection`).  Close codes are its :class:`CloseCode` enum.
"""

from __future__ import annotations

import struct
from typing import Final, TypeAlias

from websockets.frames import CloseCode

__all__ = ["CloseCode", "Wire", "websocket_frame"]

_OP_TEXT: Final = 0x1
_OP_BINARY: Final = 0x2
_FIN: Final = 0x80
_SHORT = struct.Struct("!BBH")
_LONG = struct.Struct("!BBQ")


Wire: TypeAlias = tuple[bytes | memoryview, ...]
"""One WebSocket message as the buffers to write one after the other."""


def websocket_frame(payload: bytes | memoryview, *, binary: bool) -> Wire:
    """One unmasked, unfragmented server → client WebSocket frame (RFC 6455 §5.2)."""
    first = _FIN | (_OP_BINARY if binary else _OP_TEXT)
    size = len(payload)
    if size < 126:
        head = bytes((first, size))
    elif size <= 0xFFFF:
        head = _SHORT.pack(first, 126, size)
    else:
        head = _LONG.pack(first, 127, size)
    return (head, payload)
