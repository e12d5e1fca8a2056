"""A WebSocket client made of raw bytes, for sending what a well-behaved library never would.

RFC 6455 tests need frames with reserved bits, unknown opcodes, bad close codes
and broken UTF-8, and need to see exactly what the relay answers on the wire
(its close frame, then the end of the TCP stream).  :class:`RawWebSocket`
does the opening handshake by hand and then reads and writes frames as bytes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import struct
from dataclasses import dataclass

from tests.support import GUARD


@dataclass(frozen=True)
class ServerFrame:
    fin: bool
    opcode: int
    payload: bytes

    @property
    def close_code(self) -> int | None:
        """The status code of a close frame (None for an empty one)."""
        assert self.opcode == 0x8, f"not a close frame: opcode {self.opcode:#x}"
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else None

    @property
    def close_reason(self) -> str:
        return self.payload[2:].decode()


def client_frame(
    opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0, masked: bool = True, length: int | None = None
) -> bytes:
    """One client → server frame; ``length`` declares another payload length than the real one."""
    declared = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    mask_bit = 0x80 if masked else 0
    if declared < 126:
        head += bytes([mask_bit | declared])
    elif declared <= 0xFFFF:
        head += bytes([mask_bit | 126]) + struct.pack("!H", declared)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", declared)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(byte ^ key[index % 4] for index, byte in enumerate(payload))


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


class RawWebSocket:
    """See the module docstring.  Made by :meth:`open`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, token: str | None = None, *, path: str = "/api/streams/ws") -> RawWebSocket:
        """Connect and complete the upgrade; with a token, also read the ``auth-ok``."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        if token is not None:
            lines.append(f"Authorization: Bearer {token}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        async with asyncio.timeout(GUARD):
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        socket = cls(reader, writer)
        if token is not None:
            frame = await socket.read_frame()
            assert b'"auth-ok"' in frame.payload, frame
        return socket

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def read_frame(self) -> ServerFrame:
        """The next frame from the relay (server frames are never masked)."""
        async with asyncio.timeout(GUARD):
            first, second = await self.reader.readexactly(2)
            assert not second & 0x80, "a server frame must not be masked"
            length = second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
            payload = await self.reader.readexactly(length)
        return ServerFrame(bool(first & 0x80), first & 0x0F, payload)

    async def closed_with(self) -> ServerFrame:
        """Skip data frames up to the relay's close frame; then the relay must end the TCP stream."""
        while True:
            frame = await self.read_frame()
            if frame.opcode == 0x8:
                break
        async with asyncio.timeout(GUARD):
            rest = await self.reader.read()
        assert rest == b"", f"bytes after the close frame: {rest[:100]!r}"
        return frame

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()
