"""Reading clients' WebSocket frames with fewer copies than Tornado's reader.

Tornado's ``WebSocketProtocol13`` reads a frame in four awaits (two header
bytes, the extended length, the mask, the payload); each goes through
``IOStream.read_bytes``, which reads 64 KB chunks into its own buffer, copies
them out, and then unmasks one byte at a time into a third copy.  For a 200 KB
camera frame that is most of what receiving costs the relay.

:class:`LeanFrameReader` keeps everything of Tornado's protocol (handshake,
pings, close, message assembly, size limit) and replaces only how one frame is
read: the header in at most two reads, the payload received straight into its
own buffer (``IOStream.read_into``), and unmasked with the vectorised
``apply_mask`` of the ``websockets`` library.  The relay never negotiates
compression, so compressed frames are refused as Tornado refuses unknown
extensions: by aborting the connection.
"""

from __future__ import annotations

from tornado.websocket import WebSocketProtocol13
from websockets.speedups import apply_mask

_FIN = 0x80
_RSV = 0x70
_OPCODE = 0x0F
_MASKED = 0x80
_LENGTH = 0x7F
_CONTROL = 0x08
_CONTINUATION = 0x0


class LeanFrameReader(WebSocketProtocol13):
    """Tornado's WebSocket protocol with a leaner frame reader; see the module docstring."""

    async def _receive_frame(self) -> None:
        stream = self.stream
        assert stream is not None
        head = await stream.read_bytes(2)
        first, second = head[0], head[1]
        opcode = first & _OPCODE
        is_final = first & _FIN
        length = second & _LENGTH
        is_control = opcode & _CONTROL
        if first & _RSV or (is_control and (length > 125 or not is_final)):
            self._abort()
            return
        extra = (2 if length == 126 else 8 if length == 127 else 0) + (4 if second & _MASKED else 0)
        mask = b""
        if extra:
            rest = await stream.read_bytes(extra)
            if length >= 126:
                length = int.from_bytes(rest[: extra - 4 if second & _MASKED else extra], "big")
            if second & _MASKED:
                mask = rest[-4:]
        self._wire_bytes_in += 2 + extra + length

        pending = self._fragmented_message_buffer
        if length + (len(pending) if pending is not None else 0) > self.params.max_message_size:
            self.close(1009, "message too big")
            self._abort()
            return

        if length:
            payload = bytearray(length)
            await stream.read_into(payload)
            data = apply_mask(payload, mask) if mask else bytes(payload)
        else:
            data = b""

        if not is_control:
            if opcode == _CONTINUATION:
                if pending is None:
                    self._abort()
                    return
                pending.extend(data)
                if not is_final:
                    return
                opcode = self._fragmented_message_opcode or _CONTINUATION
                data = bytes(pending)
                self._fragmented_message_buffer = None
            else:
                if pending is not None:
                    self._abort()
                    return
                if not is_final:
                    self._fragmented_message_opcode = opcode  # type: ignore[assignment]
                    self._fragmented_message_buffer = bytearray(data)
                    return

        handled = self._handle_message(opcode, data)
        if handled is not None:
            await handled
