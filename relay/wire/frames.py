"""Server → client WebSocket frames, built once and shared, and the close codes.

Server frames are not masked (RFC 6455 §5.1), so the bytes of one message are
the same for every consumer: :func:`websocket_frame` builds them once and the
outbox writes them to every socket that wants them.  Header and payload of a
large message stay two buffers (a :data:`Wire`), written with scatter-gather
I/O, so its bytes are never copied to prepend a header; a small one is one
buffer (:data:`JOIN_BELOW`).

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


JOIN_BELOW: Final = 16 * 1024
"""Payloads under this size are joined to their header in one buffer.

Copying a small payload once per message costs less than what a write of two
buffers costs per consumer: on uvloop, one buffer is a plain ``write`` where
two need a scatter-gather context per call (measured in ``benchmarks/RESULTS.md``,
issue 12).  Larger payloads stay where they are, uncopied.
"""


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
    if size < JOIN_BELOW:
        return (head + payload,)
    return (head, payload)
