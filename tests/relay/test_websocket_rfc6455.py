"""RFC 6455 on the wire: what the relay answers to frames no good client sends.

Each case opens a real socket, breaks one rule, and reads exactly what comes
back: a close frame with the right code (never an echo of a bad one, never
1005, 1006 or 1015), then the end of the TCP stream, never a bare drop.
"""

from __future__ import annotations

import asyncio
import base64
import os
from typing import Any

import orjson
import pytest

from tests.raw_websocket import RawWebSocket, client_frame, close_payload
from tests.support import GUARD, RelayHarness, running_relay


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """WebSocket behaviour does not depend on the database: SQLite only."""
    return sqlite_url


CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
NEVER_ON_THE_WIRE = {1005, 1006, 1015}


async def authenticated(relay: RelayHarness) -> RawWebSocket:
    _, token = await relay.user()
    return await RawWebSocket.open(relay.port, token)


async def closed_with(socket: RawWebSocket, data: bytes) -> tuple[int | None, str]:
    socket.send(data)
    frame = await socket.closed_with()
    assert frame.close_code not in NEVER_ON_THE_WIRE
    return frame.close_code, frame.close_reason


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535])
async def test_an_invalid_or_reserved_close_code_is_answered_1002_not_echoed(relay: RelayHarness, code: int) -> None:
    socket = await authenticated(relay)
    assert (await closed_with(socket, client_frame(CLOSE, close_payload(code, b"bye"))))[0] == 1002


async def test_a_close_frame_with_a_one_byte_body_is_answered_1002(relay: RelayHarness) -> None:
    socket = await authenticated(relay)
    assert (await closed_with(socket, client_frame(CLOSE, b"\x03")))[0] == 1002


@pytest.mark.parametrize("code", [1000, 1001, 1011, 3000, 4999])
async def test_a_valid_close_is_echoed(relay: RelayHarness, code: int) -> None:
    socket = await authenticated(relay)
    assert await closed_with(socket, client_frame(CLOSE, close_payload(code, "fin ✓".encode()))) == (code, "fin ✓")


async def test_an_empty_close_is_answered_with_an_empty_close_not_1005(relay: RelayHarness) -> None:
    socket = await authenticated(relay)
    assert await closed_with(socket, client_frame(CLOSE)) == (None, "")


async def test_a_close_reason_that_is_not_utf8_is_answered_1007(relay: RelayHarness) -> None:
    socket = await authenticated(relay)
    assert (await closed_with(socket, client_frame(CLOSE, close_payload(1000, b"\xff\xfe"))))[0] == 1007


async def test_a_text_message_that_is_not_utf8_is_answered_1007(relay: RelayHarness) -> None:
    socket = await authenticated(relay)
    assert (await closed_with(socket, client_frame(TEXT, b'{"type": "ping", "x": "\xc3\x28"}')))[0] == 1007


async def test_lone_surrogates_in_utf8_are_not_utf8(relay: RelayHarness) -> None:
    socket = await authenticated(relay)
    assert (await closed_with(socket, client_frame(TEXT, b'{"type": "ping", "x": "\xed\xa0\x80"}')))[0] == 1007


async def test_a_fragmented_text_is_refused_as_soon_as_its_bad_bytes_arrive(relay: RelayHarness) -> None:
    socket = await authenticated(relay)
    socket.send(client_frame(TEXT, b'{"type": "ping", "x": "', fin=False))
    socket.send(client_frame(CONT, b"\xf0\x28\x8c\x28", fin=False))  # the final fragment is never sent
    frame = await socket.closed_with()
    assert frame.close_code == 1007


async def test_a_character_split_across_fragments_is_fine(relay: RelayHarness) -> None:
    socket = await authenticated(relay)
    text = '{"type": "ping", "x": "é€😀"}'.encode()
    cut = text.index("€".encode()) + 1  # inside the three bytes of €
    socket.send(client_frame(TEXT, text[:cut], fin=False))
    socket.send(client_frame(CONT, text[cut:]))
    pong = await socket.read_frame()
    assert pong.payload == b'{"type":"pong"}'


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(client_frame(TEXT, b'{"type":"ping"}', rsv=0b100), id="reserved bit 1"),
        pytest.param(client_frame(BINARY, b"x", rsv=0b010), id="reserved bit 2"),
        pytest.param(client_frame(PING, b"", rsv=0b001), id="reserved bit 3"),
        pytest.param(client_frame(0x3, b"x"), id="unknown data opcode"),
        pytest.param(client_frame(0xB, b"x"), id="unknown control opcode"),
        pytest.param(client_frame(PING, b"x" * 126), id="control frame over 125 bytes"),
        pytest.param(client_frame(PING, b"x", fin=False), id="fragmented control frame"),
        pytest.param(client_frame(TEXT, b'{"type":"ping"}', masked=False), id="unmasked client frame"),
        pytest.param(client_frame(CONT, b"x"), id="continuation without a start"),
        pytest.param(
            client_frame(TEXT, b"{", fin=False) + client_frame(TEXT, b"}"), id="new message in a fragmented one"
        ),
    ],
)
async def test_a_protocol_error_is_answered_1002_not_dropped(relay: RelayHarness, data: bytes) -> None:
    socket = await authenticated(relay)
    code, reason = await closed_with(socket, data)
    assert code == 1002, f"{code} {reason}"


async def test_a_ping_is_answered_with_its_payload_between_fragments(relay: RelayHarness) -> None:
    socket = await authenticated(relay)
    socket.send(client_frame(TEXT, b'{"type": ', fin=False))
    socket.send(client_frame(PING, b"still there?"))
    pong = await socket.read_frame()
    assert (pong.opcode, pong.payload) == (PONG, b"still there?")
    socket.send(client_frame(CONT, b'"ping"}'))
    assert (await socket.read_frame()).payload == b'{"type":"pong"}'


async def test_a_message_over_the_limit_is_answered_1009_before_its_payload_arrives(database_url: str) -> None:
    async with running_relay(database_url, ping_interval=0, max_message_bytes=10_000) as relay:
        socket = await authenticated(relay)
        frame_head = client_frame(BINARY, b"", length=10_001)  # declares more than the limit, sends nothing
        code, _ = await closed_with(socket, frame_head)
        assert code == 1009


async def test_an_unauthenticated_peer_gets_the_same_rules(relay: RelayHarness) -> None:
    socket = await RawWebSocket.open(relay.port)
    assert (await closed_with(socket, client_frame(0x3, b"x")))[0] == 1002


async def test_a_client_that_sends_before_the_101_loses_nothing(relay: RelayHarness) -> None:
    """Bytes pipelined after the upgrade request reach the session (Tornado read them; the relay passes them on)."""
    _, token = await relay.user()
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
    request = (
        "GET /api/streams/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\nSec-WebSocket-Version: 13\r\n"
        f"Authorization: Bearer {token}\r\n\r\n"
    ).encode()
    writer.write(request + client_frame(TEXT, b'{"type":"ping"}'))
    socket = RawWebSocket(reader, writer)
    async with asyncio.timeout(GUARD):
        await reader.readuntil(b"\r\n\r\n")
    assert b"auth-ok" in (await socket.read_frame()).payload
    assert (await socket.read_frame()).payload == b'{"type":"pong"}'
    await socket.close()


async def test_a_connection_cut_while_a_message_waits_for_the_database_forgets_what_came_behind_it(
    relay: RelayHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bytes read behind the waiting alert are not fed to the released protocol once the wait ends."""
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    store = relay.relay.store.alerts
    add, entered, release = store.add, asyncio.Event(), asyncio.Event()

    async def slow_add(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        await release.wait()
        return await add(*args, **kwargs)

    monkeypatch.setattr(store, "add", slow_add)
    socket = await RawWebSocket.open(relay.port, token)
    subscribe = {"type": "subscribe", "streamId": stream_id, "clientType": "ml-service", "produces": ["alert"]}
    socket.send(client_frame(TEXT, orjson.dumps(subscribe)))
    assert b'"subscribed"' in (await socket.read_frame()).payload
    alert = orjson.dumps({"type": "alert", "streamId": stream_id, "severity": "low", "message": "m", "ref": "r"})
    socket.send(client_frame(TEXT, alert) + client_frame(TEXT, b'{"type":"ping"}') + client_frame(PING, b"p"))
    async with asyncio.timeout(GUARD):
        await entered.wait()
    (connection,) = relay.relay.connections
    handling = connection.stop_reading()  # the task the alert waits in: the public way to follow it
    assert handling is not None
    connection.terminate(1011, "cut", abort=True)
    await relay.relay.connections.all_gone(GUARD)
    release.set()
    async with asyncio.timeout(GUARD):
        await handling  # ends without an error
    assert (await relay.api("GET", "/api/alerts", token=token)).json["alerts"][0]["ref"] == "r"  # stored anyway
