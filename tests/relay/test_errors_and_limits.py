"""Every error code of the contract, the size limits (1009), the rate limits and the bounds on waiting clients."""

from __future__ import annotations

import asyncio
import logging
import struct

import pytest
from websockets.exceptions import InvalidStatus
from websockets.protocol import State

from relay.logs import LimitRefusals
from relay.tornado.connection import UNAUTHENTICATED_MESSAGE_BYTES
from tests.support import GUARD, JPEG, RelayHarness, running_relay


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{oops", "invalid-json"),
        ('"just a string"', "invalid-message"),
        ('{"type": "subscribe"}', "invalid-message"),
        ('{"type": "levitate"}', "unknown-type"),
        ('{"type": "alert", "streamId": "s", "severity": "low", "message": "' + "x" * 3000 + '"}', "too-large"),
    ],
)
async def test_a_rejected_message_is_answered_and_the_connection_stays_open(
    relay: RelayHarness, raw: str, code: str
) -> None:
    _, token = await relay.user()
    client = await relay.connect(token)
    await client.ws.send(raw)
    await client.expect("error", code=code)
    await client.send({"type": "ping"})
    await client.expect("pong")


async def test_a_malformed_binary_message_is_answered(relay: RelayHarness) -> None:
    _, token = await relay.user()
    client = await relay.connect(token)
    await client.ws.send(struct.pack(">I", 999) + b"{}")
    await client.expect("error", code="invalid-message")
    await client.send({"type": "ping"})
    await client.expect("pong")


async def test_a_message_over_the_size_limit_closes_with_1009(database_url: str) -> None:
    async with running_relay(database_url, ping_interval=0, max_message_bytes=64 * 1024) as relay:
        _, token = await relay.user()
        stream_id = await relay.stream(token)
        producer = await relay.producer(token, stream_id)
        await producer.send_frame(stream_id, JPEG * 200)
        code, _ = await producer.closed()
        assert code == 1009


async def test_frames_over_the_rate_limit_are_refused_once_a_second(database_url: str) -> None:
    async with running_relay(database_url, ping_interval=0, max_fps=0.5) as relay:
        _, token = await relay.user()
        stream_id = await relay.stream(token)
        producer = await relay.producer(token, stream_id)
        viewer = await relay.consumer(token, stream_id, consumes=["video-frame", "alert"], frameFormat="binary")
        for _ in range(10):
            await producer.send_frame(stream_id)
        await producer.send({"type": "ping"})
        replies = [await producer.recv()]
        while replies[-1].get("type") != "pong":  # type: ignore[union-attr]
            replies.append(await producer.recv())
        errors = [r for r in replies if r.get("type") == "error"]  # type: ignore[union-attr]
        assert [e["code"] for e in errors] == ["rate-limited"], "one warning, not one per frame"

        await producer.send({"type": "alert", "streamId": stream_id, "severity": "low", "message": "sentinel"})
        await producer.expect("alert-stored")
        frames = 0
        while isinstance(await viewer.recv(), tuple):
            frames += 1
        assert 1 <= frames <= 2, "the viewer gets what the bucket allowed (a burst of one), not all ten"


async def test_alerts_over_the_rate_limit_are_refused_with_their_ref(database_url: str) -> None:
    async with running_relay(database_url, ping_interval=0, max_alerts_per_second=1) as relay:
        _, token = await relay.user()
        stream_id = await relay.stream(token)
        ml = await relay.consumer(token, stream_id, consumes=[], produces=["alert"])
        outcomes = []
        for index in range(4):
            await ml.send(
                {"type": "alert", "streamId": stream_id, "severity": "low", "message": "m", "ref": f"r{index}"}
            )
            reply = await ml.recv()
            assert isinstance(reply, dict)
            outcomes.append((reply["type"], reply.get("code"), reply["ref"]))
        assert outcomes[0] == ("alert-stored", None, "r0")
        assert ("error", "rate-limited", "r3") in outcomes


async def test_rest_errors_are_json_never_html(relay: RelayHarness) -> None:
    _, token = await relay.user()
    missing = await relay.api("GET", "/api/nope", token=token)
    assert missing.status == 404
    assert missing.json["error"]["code"] == "not-found"
    wrong_method = await relay.api("DELETE", "/api/streams/list", token=token)
    assert wrong_method.status == 405
    assert wrong_method.json["error"]["code"] == "method-not-allowed"
    for body, status in [
        (b"[1]", 400),
        (b"not json", 400),
        (b'{"deviceName": ""}', 400),
        (b'{"deviceName": "x", "metadata": 3}', 400),
        (b'{"deviceName": "x", "metadata": {"blob": "' + b"x" * 2_000_000 + b'"}}', 413),
    ]:
        response = await relay.api("POST", "/api/streams/register", token=token, raw_body=body)
        assert response.status == status, body[:40]
        assert set(response.json["error"]) == {"code", "message"}
        assert response.headers["Content-Type"] == "application/json"


async def test_rest_rate_limit_answers_429(database_url: str) -> None:
    async with running_relay(database_url, ping_interval=0, max_rest_per_second=1) as relay:
        _, token = await relay.user()
        statuses = [(await relay.api("GET", "/api/streams/list", token=token)).status for _ in range(5)]
        assert statuses[0] == 200
        assert 429 in statuses


async def test_a_client_that_trickles_its_headers_is_cut_off(sqlite_url: str) -> None:
    async with running_relay(sqlite_url, ping_interval=0, header_timeout=0.5) as relay:
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        writer.write(b"GET /api/health HTTP/1.1\r\nHost: x\r\n")
        async with asyncio.timeout(GUARD):
            for index in range(100):  # one header line at a time, never the blank line that ends them
                writer.write(f"X-Slow-{index}: y\r\n".encode())
                await writer.drain()
                if await read_or_closed(reader):
                    break
        assert index < 100, "the relay kept the connection open"
        writer.close()


async def read_or_closed(reader: asyncio.StreamReader) -> bool:
    """Whether the server closed the connection within a tenth of a second."""
    try:
        return await asyncio.wait_for(reader.read(100), 0.1) == b""
    except TimeoutError:
        return False


async def test_before_it_authenticates_a_client_may_send_only_small_messages(sqlite_url: str) -> None:
    async with running_relay(sqlite_url, ping_interval=0) as relay:
        _, token = await relay.user()
        stream_id = await relay.stream(token)
        big = JPEG + b"\x00" * (UNAUTHENTICATED_MESSAGE_BYTES + 1)

        stranger = await relay.connect()
        await stranger.send_frame(stream_id, big)
        assert (await stranger.closed())[0] == 1009

        # A phone that sends its auth, register and first frames without waiting for the answers.
        phone = await relay.connect()
        viewer = await relay.consumer(token, stream_id, consumes=["video-frame"], frameFormat="binary")
        await phone.send({"type": "auth", "token": token})
        await phone.send({"type": "register", "streamId": stream_id, "clientType": "mobile"})
        await phone.send_frame(stream_id, JPEG * 100)
        await phone.expect("auth-ok")
        await phone.expect("registered", streamId=stream_id)
        header, image = await viewer.recv()  # type: ignore[misc]
        assert image == JPEG * 100

        await phone.send_frame(stream_id, big)  # authenticated: the full limit
        header, image = await viewer.recv()  # type: ignore[misc]
        assert (header["streamId"], len(image)) == (stream_id, len(big))


async def test_connections_waiting_to_authenticate_are_bounded_per_address(sqlite_url: str) -> None:
    async with running_relay(sqlite_url, ping_interval=0, max_unauthenticated_per_address=3) as relay:
        _, token = await relay.user()
        waiting = [await relay.connect() for _ in range(3)]
        with pytest.raises(InvalidStatus) as refused:
            await relay.connect()
        assert refused.value.response.status_code == 429
        assert refused.value.response.headers["Retry-After"] == "1"
        assert (await relay.connect(token)).ws.state is State.OPEN  # credentials in the upgrade: never held back

        await waiting[0].send({"type": "auth", "token": token})
        await waiting[0].expect("auth-ok")  # authenticated: its place is free
        await waiting[1].close()  # gone: its place is free
        await relay.connect()
        await relay.connect()
        with pytest.raises(InvalidStatus):
            await relay.connect()
        assert len(relay.relay.waiting) == 3


async def test_a_flood_of_refused_upgrades_writes_a_few_log_lines_not_one_each(
    sqlite_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_relay(sqlite_url, ping_interval=0, max_unauthenticated_per_address=1) as relay:
        access = logging.getLogger("tornado.access")  # a window of its own: other tests' 429s do not count
        filters = [LimitRefusals() if isinstance(f, LimitRefusals) else f for f in access.filters]
        assert any(isinstance(f, LimitRefusals) for f in filters), "the relay installed the limit"
        monkeypatch.setattr(access, "filters", filters)
        await relay.connect()
        with caplog.at_level(logging.WARNING, logger="tornado.access"):
            for _ in range(60):
                with pytest.raises(InvalidStatus) as refused:
                    await relay.connect()
                assert refused.value.response.status_code == 429
            not_found = await relay.api("GET", "/api/nothing-here")
        assert not_found.status == 404
        lines = [record.getMessage() for record in caplog.records if record.name == "tornado.access"]
        assert len([line for line in lines if line.startswith("429 ")]) == 20, "the first 20 in ten seconds"
        assert any(line.startswith("404 ") for line in lines), "other answers are all logged"
