"""Canaries: every place the project leans on a dependency beyond its documented API.

Each test pins one such place and fails with what to re-check when a dependency
is upgraded.  ``docs/ARCHITECTURE.md`` ("Where the code leans on dependencies")
lists the same places; a new one gets a canary here and a line there.
"""

from __future__ import annotations

import asyncio
import socket

from tornado.iostream import IOStream
from websockets.frames import Opcode
from websockets.protocol import Protocol, Side

from tests.raw_websocket import client_frame


def test_websockets_protocol_takes_a_memoryview() -> None:
    """relay/tornado/connection.py feeds the library views of its shared receive buffer."""
    protocol = Protocol(Side.SERVER)
    data = bytearray(client_frame(0x2, b"frame bytes"))
    protocol.receive_data(memoryview(data))  # type: ignore[arg-type]
    data[:] = b"\x00" * len(data)  # the caller reuses its buffer at once
    (frame,) = protocol.events_received()
    assert (frame.opcode, frame.data) == (Opcode.BINARY, b"frame bytes"), (
        "websockets' Protocol.receive_data no longer copies a memoryview it is given: "
        "relay/tornado/connection.py must pass bytes(view) to it"
    )


def test_websockets_protocol_reads_its_size_limit_before_each_frame() -> None:
    """relay/tornado/connection.py raises a connection's limit once it is authenticated."""
    protocol = Protocol(Side.SERVER, max_size=16)
    protocol.max_message_size = 1024  # what WebSocketConnection.admitted() does
    protocol.receive_data(client_frame(0x2, b"x" * 100))
    events = protocol.events_received()
    assert [(frame.opcode, len(frame.data)) for frame in events] == [(Opcode.BINARY, 100)], (
        "websockets' Protocol no longer reads max_message_size for each frame: relay/tornado/connection.py "
        "must find another way to allow full-size messages after authentication"
    )


async def test_tornado_read_into_completes_at_once_with_buffered_bytes() -> None:
    """relay/tornado/handler.py takes what Tornado read past the upgrade with read_into(partial=True)."""
    ours, theirs = socket.socketpair()
    stream = IOStream(ours)
    try:
        theirs.sendall(b"abcdef")
        assert await stream.read_bytes(1) == b"a"  # Tornado now holds the rest in its own buffer
        buffer = bytearray(64)
        future = asyncio.ensure_future(stream.read_into(buffer, partial=True))
        assert future.done(), (
            "IOStream.read_into(partial=True) no longer completes at once when bytes are buffered: "
            "relay/tornado/handler.py's _buffered() would lose bytes a client sent before the 101"
        )
        assert bytes(buffer[: future.result()]) == b"bcdef"
    finally:
        stream.close()
        theirs.close()


def test_bokeh_tornado_keeps_its_application_contexts() -> None:
    """workbench/server/routes.py finds the Tornado application serving the app by BokehTornado._applications."""
    from bokeh.application import Application
    from bokeh.server.contexts import ApplicationContext
    from bokeh.server.tornado import BokehTornado

    tornado_app = BokehTornado({"/workbench": Application()})
    contexts = getattr(tornado_app, "_applications", None)
    found = contexts.get("/workbench") if isinstance(contexts, dict) else None
    assert isinstance(found, ApplicationContext), (
        "BokehTornado no longer keeps ApplicationContext objects in _applications: plain `panel serve workbench` "
        "cannot find its server to add the relay's routes; re-check workbench/server/routes.py "
        "(`--plugins workbench.plugin` still works)"
    )


def test_panel_still_has_the_toast_bug_that_is_repaired() -> None:
    """workbench/server/notifications.py rewrites Panel's NotificationArea script (a private class attribute)."""
    from panel.io.notifications import NotificationArea

    from workbench.server.notifications import BUGGY_LOOP, repaired

    script = NotificationArea._scripts.get("notifications")
    assert isinstance(script, str), "Panel's NotificationArea._scripts changed shape: re-check the toast repair"
    assert BUGGY_LOOP in script or repaired(), (
        "Panel fixed its toast loop: delete workbench/server/notifications.py and its call in app_hooks.py"
    )


def test_websockets_apply_mask_reads_a_memoryview() -> None:
    """relay/tornado/framing.py unmasks a payload straight out of the shared receive buffer."""
    from relay.tornado.framing import unmask

    buffer = bytearray(b"\x01\x02\x03\x04\x05\x06" + bytes([1, 2, 3, 4]))
    view = memoryview(buffer)
    unmasked = unmask(view[:6], bytes(view[6:]))
    assert unmasked == bytes([0, 0, 0, 0, 4, 4]), (
        "websockets' apply_mask no longer takes a memoryview of the payload: relay/tornado/connection.py "
        "must pass bytes to relay.tornado.framing.unmask"
    )
    buffer[:] = bytes(len(buffer))  # the buffer is reused at once: the result must be bytes of its own
    assert type(unmasked) is bytes
    assert unmasked == bytes([0, 0, 0, 0, 4, 4])


def test_websockets_protocol_keeps_its_parser_and_its_end_where_the_relay_releases_them() -> None:
    """relay/tornado/connection.py closes a closed protocol's parser and drops its exception (cycles)."""
    import gc
    import weakref

    from relay.tornado.connection import _release

    gc.collect()
    gc.disable()
    try:
        protocol = Protocol(Side.SERVER)
        protocol.receive_data(client_frame(0x2, b"x"))
        protocol.receive_eof()  # the end of the stream without a close: the parser ends on EOFError
        assert isinstance(protocol.parser_exc, EOFError)
        released = weakref.ref(protocol)
        _release(protocol)
        del protocol
        assert released() is None, (
            "websockets' Protocol is no longer freed once its parser is closed and parser_exc dropped: "
            "re-check relay.tornado.connection._release (closed connections would wait for a full GC)"
        )
    finally:
        gc.enable()
