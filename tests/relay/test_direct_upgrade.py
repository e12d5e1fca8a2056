"""``relay serve`` reads WebSocket upgrades off the socket itself (relay.tornado.direct_upgrade).

Every other test of the WebSocket endpoint runs through it; these pin what
is its own: it answers exactly as Tornado's handler does (the same relay
behind a proxy takes Tornado's path), it hands what is not an upgrade to
Tornado untouched, and it bounds what a client may do before its request is
whole: dribbling, an endless head, silence, bad bytes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import socket
import struct
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from websockets.protocol import State

from relay.tornado import direct_upgrade
from tests.raw_websocket import RawWebSocket, client_frame
from tests.support import GUARD, RelayHarness, running_relay

PATHS = ["direct", "tornado"]


@pytest.fixture(params=PATHS)
async def either(request: pytest.FixtureRequest, sqlite_url: str) -> AsyncIterator[RelayHarness]:
    """A relay whose upgrades ``relay serve`` reads itself, or (behind a proxy) Tornado reads."""
    async with running_relay(sqlite_url, ping_interval=0, behind_proxy=request.param == "tornado") as relay:
        yield relay


def upgrade_request(path: str = "/api/streams/ws", *extra: str, version: str = "13") -> bytes:
    lines = [
        f"GET {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}",
        f"Sec-WebSocket-Version: {version}",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def answer_to(port: int, request: bytes, *, pieces: int = 1) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of what the relay answers ``request`` (sent in ``pieces``)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        step = max(1, -(-len(request) // pieces))
        for start in range(0, len(request), step):
            writer.write(request[start : start + step])
            await writer.drain()
        async with asyncio.timeout(GUARD):
            head = await reader.readuntil(b"\r\n\r\n")
            status_line, *header_lines = head.decode("latin-1").split("\r\n")[:-2]
            headers = {name.lower(): value for name, _, value in (line.partition(": ") for line in header_lines)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
        return int(status_line.split()[1]), headers, body
    finally:
        writer.close()


def error_of(body: bytes) -> dict[str, str]:
    error: dict[str, str] = orjson.loads(body)["error"]
    return error


async def test_both_paths_refuse_alike(sqlite_url: str) -> None:
    """Each refusal of the upgrade: the same status, code, message and headers whoever read the request."""
    answers: dict[str, list[tuple[int, str, str, str | None, str | None]]] = {}
    for path in PATHS:
        async with running_relay(
            sqlite_url, ping_interval=0, max_unauthenticated_per_address=1, behind_proxy=path == "tornado"
        ) as relay:
            waiting = await relay.connect()  # holds the one place of its address
            requests = [
                b"GET /api/streams/ws HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",  # no upgrade: 426
                upgrade_request(version="8"),  # a version the library does not speak: 400
                upgrade_request("/api/streams/ws", "Origin: http://evil.example"),  # 403
                upgrade_request(),  # no credentials, and no place left to wait in: 429
                upgrade_request("/api/streams/ws?token=%FF"),  # not UTF-8: 400
            ]
            answers[path] = []
            for request in requests:
                status, headers, body = await answer_to(relay.port, request)
                error = error_of(body)
                answers[path].append(
                    (status, error["code"], error["message"], headers.get("retry-after"), headers.get("upgrade"))
                )
            assert headers["content-type"] == "application/json"
            assert waiting.ws.state is State.OPEN
    assert [answer[0] for answer in answers["direct"]] == [426, 400, 403, 429, 400]
    assert answers["direct"][:4] == answers["tornado"][:4]
    assert answers["tornado"][4][:2] == answers["direct"][4][:2] == (400, "invalid-request")


async def test_the_query_token_is_read_as_tornado_reads_it(either: RelayHarness) -> None:
    user_id, token = await either.user()
    for query in (f"?token={token}", f"?%74oken={token}", f"?token=wrong&token={token}", f"?token=%20{token}%20"):
        reader, writer = await asyncio.open_connection("127.0.0.1", either.port)
        writer.write(upgrade_request(f"/api/streams/ws{query}"))
        socket = RawWebSocket(reader, writer)
        async with asyncio.timeout(GUARD):
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
        assert orjson.loads((await socket.read_frame()).payload) == {"type": "auth-ok", "userId": user_id}, query
        await socket.close()


async def test_a_request_dribbled_a_few_bytes_at_a_time_is_read_whole(either: RelayHarness) -> None:
    _, token = await either.user()
    reader, writer = await asyncio.open_connection("127.0.0.1", either.port)
    request = upgrade_request("/api/streams/ws", f"Authorization: Bearer {token}")
    line = request.index(b"\r\n") + 2  # the request line whole (a peek decides by it), the rest dribbled
    writer.write(request[:line])
    for start in range(line, len(request), 3):
        writer.write(request[start : start + 3])
        await writer.drain()
        await asyncio.sleep(0)  # a turn of the loop for each piece: the relay sees them one by one
    writer.write(client_frame(0x1, b'{"type":"ping"}'))  # before the 101 came
    socket = RawWebSocket(reader, writer)
    async with asyncio.timeout(GUARD):
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    assert b"auth-ok" in (await socket.read_frame()).payload
    assert (await socket.read_frame()).payload == b'{"type":"pong"}'
    await socket.close()


async def test_what_is_not_an_upgrade_goes_to_tornado_untouched(either: RelayHarness) -> None:
    _, token = await either.user()
    health = b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n"
    status, _, body = await answer_to(either.port, health, pieces=len(health))  # a byte at a time, too
    assert status == 200, body
    for request in (
        b"GET /api/streams/wsx HTTP/1.1\r\nHost: x\r\n\r\n",  # a longer path
        b"GET /api/streams/ws;token=x HTTP/1.1\r\nHost: x\r\n\r\n",  # a path parameter
        b"POST /api/streams/ws HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    ):
        status, headers, _ = await answer_to(either.port, request, pieces=7)
        assert status in (404, 405), request  # /api/streams/wsx is a stream's id: PATCH or DELETE
        if request.startswith(b"POST"):
            assert (status, headers["allow"]) == (405, "GET")
    response = await either.api("GET", "/api/streams/list", token=token)
    assert response.status == 200


async def test_a_head_that_never_ends_is_refused_431_not_buffered(sqlite_url: str) -> None:
    async with running_relay(sqlite_url, ping_interval=0) as relay:
        endless = upgrade_request()[:-2] + b"X-Padding: " + b"a" * 70_000  # no end of the head in 64 KB
        status, headers, body = await answer_to(relay.port, endless, pieces=20)
        assert (status, error_of(body)["code"]) == (431, "too-large")
        assert headers["connection"] == "close"


async def test_a_malformed_head_is_answered_400(sqlite_url: str) -> None:
    async with running_relay(sqlite_url, ping_interval=0) as relay:
        status, _, body = await answer_to(relay.port, b"GET /api/streams/ws HTTP/1.1\r\nno colon here\r\n\r\n")
        assert (status, error_of(body)["code"]) == (400, "invalid-request")
        status, _, body = await answer_to(relay.port, upgrade_request()[:-2] + b"X: " + b"y" * 9000 + b"\r\n\r\n")
        assert status == 431, body  # one header line longer than the library reads


@pytest.mark.parametrize("said", [b"", b"GET /api/str", b"GET /api/streams/ws HTTP/1.1\r\nHost: x\r\n"])
async def test_a_silent_or_stalled_client_is_closed_after_the_header_timeout(sqlite_url: str, said: bytes) -> None:
    async with running_relay(sqlite_url, ping_interval=0, header_timeout=0.3) as relay:
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        writer.write(said)
        async with asyncio.timeout(GUARD):
            assert await reader.read() == b""  # closed by the relay, long before the guard
        writer.close()


async def test_refusals_read_here_are_logged_like_tornados_without_the_token(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_relay(sqlite_url, ping_interval=0) as relay:
        with caplog.at_level(logging.INFO, logger="tornado.access"):
            status, _, _ = await answer_to(
                relay.port, b"GET /api/streams/ws?token=vr_secret-token-123 HTTP/1.1\r\nHost: x\r\n\r\n"
            )
        assert status == 426
        lines = [record.getMessage() for record in caplog.records if record.name == "tornado.access"]
        assert any(line.startswith("426 GET /api/streams/ws?token=") for line in lines), lines
        assert not any("secret-token" in line for line in lines)


async def test_the_relay_stops_with_connections_still_saying_nothing(sqlite_url: str) -> None:
    async with running_relay(sqlite_url, ping_interval=0) as relay:
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        writer.write(b"GET /api/streams/ws HTTP/1.1\r\n")  # ours, but not whole
        await writer.drain()
        await relay.server.stop()
        async with asyncio.timeout(GUARD):
            assert await reader.read() == b""
        writer.close()


@pytest.mark.parametrize("name", ["Origin", "Authorization", "Host"])
async def test_a_header_sent_twice_is_a_400_not_a_500(either: RelayHarness, name: str) -> None:
    _, token = await either.user()
    values = {"Origin": "http://127.0.0.1", "Authorization": f"Bearer {token}", "Host": "127.0.0.1"}
    request = upgrade_request("/api/streams/ws", f"{name}: {values[name]}", f"{name}: {values[name]}")
    status, _, body = await answer_to(either.port, request)
    assert status == 400, body
    if body or name != "Host":  # Tornado itself refuses two Hosts, with a 400 of its own before any handler
        assert error_of(body)["code"] == "invalid-request"


async def test_a_request_line_begun_but_not_whole_does_not_spin_the_loop(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Peeked bytes stay in the socket, readable at every turn: a start too short to tell is Tornado's."""
    peeks = 0
    peek = direct_upgrade._Upgrade._peek

    def counted(upgrade: direct_upgrade._Upgrade) -> bool:
        nonlocal peeks
        peeks += 1
        return peek(upgrade)

    monkeypatch.setattr(direct_upgrade._Upgrade, "_peek", counted)
    async with running_relay(sqlite_url, ping_interval=0) as relay:
        _, token = await relay.user()
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        request = upgrade_request("/api/streams/ws", f"Authorization: Bearer {token}")
        writer.write(request[:9])  # "GET /api/", and then a pause
        await writer.drain()
        for _ in range(3):  # many turns of the relay's loop
            status, _, _ = await answer_to(relay.port, b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert status == 200
        assert peeks <= 2 * 4  # at most twice a connection (nothing yet, then its start), not at every turn
        writer.write(request[9:])
        async with asyncio.timeout(GUARD):
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
        writer.close()


async def test_a_head_whose_lines_end_with_a_bare_lf_is_read_as_tornado_reads_it(either: RelayHarness) -> None:
    _, token = await either.user()
    request = upgrade_request("/api/streams/ws", f"Authorization: Bearer {token}")
    for lines in (request.replace(b"\r\n", b"\n"), request[:-4] + b"\n\r\n", request[:-4] + b"\r\n\n"):
        reader, writer = await asyncio.open_connection("127.0.0.1", either.port)
        writer.write(lines + client_frame(0x1, b'{"type":"ping"}'))
        socket = RawWebSocket(reader, writer)
        async with asyncio.timeout(GUARD):
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101"), lines
        assert b"auth-ok" in (await socket.read_frame()).payload
        assert (await socket.read_frame()).payload == b'{"type":"pong"}'
        await socket.close()


async def test_the_end_of_the_head_is_found_across_reads_at_every_offset(sqlite_url: str) -> None:
    async with running_relay(sqlite_url, ping_interval=0) as relay:
        _, token = await relay.user()
        request = upgrade_request("/api/streams/ws", f"Authorization: Bearer {token}")
        line = request.index(b"\r\n") + 2
        for cut in range(len(request) - 4, len(request)):
            reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
            writer.write(request[:line])
            await writer.drain()
            writer.write(request[line:cut])
            await writer.drain()
            await asyncio.sleep(0)
            writer.write(request[cut:])
            socket = RawWebSocket(reader, writer)
            async with asyncio.timeout(GUARD):
                assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101"), cut
            assert b"auth-ok" in (await socket.read_frame()).payload
            await socket.close()


@pytest.mark.parametrize("path", PATHS)
async def test_a_client_reset_while_its_token_is_looked_up_leaves_nothing_behind(
    sqlite_url: str, path: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_relay(sqlite_url, ping_interval=0, behind_proxy=path == "tornado") as relay:
        _, token = await relay.user()
        users, asked, answer, answered = relay.relay.tokens._users, asyncio.Event(), asyncio.Event(), asyncio.Event()
        look_up = users.user_for_token

        async def slow(token: str) -> str | None:
            asked.set()
            await answer.wait()
            try:
                return await look_up(token)
            finally:
                answered.set()

        monkeypatch.setattr(users, "user_for_token", slow)
        loop = asyncio.get_running_loop()
        client = socket.socket()
        client.setblocking(False)
        await loop.sock_connect(client, ("127.0.0.1", relay.port))
        await loop.sock_sendall(client, upgrade_request("/api/streams/ws", f"Authorization: Bearer {token}"))
        await asked.wait()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()  # a reset
        answer.set()
        await answered.wait()  # the database's answer (a thread's work, as long as a loaded machine makes it)
        for _ in range(3):  # turns of the relay's loop: the upgrade after the lookup
            status, _, _ = await answer_to(relay.port, b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert status == 200
        assert not [record.getMessage() for record in caplog.records if record.exc_info]
        upgrades = relay.server._upgrades
        assert upgrades is not None
        assert (upgrades._pending, upgrades._answering) == (set(), set())


async def test_the_relay_stops_while_a_token_lookup_hangs(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async with running_relay(sqlite_url, ping_interval=0) as relay:
        _, token = await relay.user()
        users, asked, answer = relay.relay.tokens._users, asyncio.Event(), asyncio.Event()

        async def hanging(_token: str) -> str | None:
            asked.set()
            await answer.wait()  # a database that answers only at its timeout
            return None

        monkeypatch.setattr(users, "user_for_token", hanging)
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        writer.write(upgrade_request("/api/streams/ws", f"Authorization: Bearer {token}"))
        await asked.wait()
        try:
            async with asyncio.timeout(GUARD):
                await relay.server.stop()
                assert await reader.read() == b""
        finally:
            answer.set()
            writer.close()


async def test_the_relay_stops_without_waiting_for_refused_clients_to_close(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    lingering: list[socket.socket] = []
    linger = direct_upgrade._Lingering.__init__

    def kept(self: direct_upgrade._Lingering, *args: Any) -> None:
        linger(self, *args)
        lingering.append(args[1])

    monkeypatch.setattr(direct_upgrade._Lingering, "__init__", kept)
    async with running_relay(sqlite_url, ping_interval=0) as relay:
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        writer.write(b"GET /api/streams/ws HTTP/1.1\r\nHost: x\r\n\r\n")  # 426, and the client stays
        async with asyncio.timeout(GUARD):
            assert (await reader.read()).startswith(b"HTTP/1.1 426")
        await relay.server.stop()
        assert [sock.fileno() for sock in lingering] == [-1]  # closed by the stop, not LINGER_SECONDS later
        writer.close()


async def test_a_connection_tornado_cannot_take_is_closed_not_left_open(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*_: object) -> None:
        raise RuntimeError("Tornado could not take it")

    monkeypatch.setattr("relay.tornado.server.to_http_server", fail)
    async with running_relay(sqlite_url, ping_interval=0) as relay:
        silent_reader, silent_writer = await asyncio.open_connection("127.0.0.1", relay.port)  # first peek: nothing
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        writer.write(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
        await closed(reader)  # and so accepted after the silent one
        silent_writer.write(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")  # now a later peek hands it over
        await closed(silent_reader)
        writer.close()
        silent_writer.close()


async def closed(reader: asyncio.StreamReader) -> None:
    """The relay closed the connection (its unread request makes that a reset)."""
    async with asyncio.timeout(GUARD):
        with contextlib.suppress(ConnectionResetError):
            assert await reader.read() == b""
