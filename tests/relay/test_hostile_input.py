"""What a hostile or careless client sends is answered, never stored unreadably, never drops the connection.

Each case here was found by fuzzing the relay: before, it made the relay drop
the client's connection without a close frame, or stored an alert or a stream
that made every later ``GET /api/alerts`` or ``GET /api/streams/list`` answer 500.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from relay.wire.video import LENGTH
from tests.support import Client, RelayHarness


def deep(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = {"x": value}
    return value


async def still_open(client: Client) -> None:
    await client.send({"type": "ping"})
    await client.until("pong")


async def send_raw(client: Client, message: dict[str, Any]) -> None:
    """As any JSON library may write it: big integers, escaped NULs and lone surrogates."""
    await client.ws.send(json.dumps(message))


HOSTILE_ALERTS = [
    pytest.param({"metadata": deep(250)}, id="metadata nested 250 levels"),
    pytest.param({"metadata": deep(33)}, id="metadata nested 33 levels"),
    pytest.param({"timestamp": 2**64}, id="timestamp past 64 bits"),
    pytest.param({"timestamp": 10**30}, id="timestamp of 10**30"),
    pytest.param({"message": "a NUL \u0000 inside"}, id="NUL in the message"),
    pytest.param({"metadata": {"note": "NUL \u0000"}}, id="NUL in metadata"),
    pytest.param({"metadata": {"\u0000": 1}}, id="NUL in a metadata key"),
    pytest.param({"ref": "r\u0000"}, id="NUL in the ref"),
    pytest.param({"metadata": {"n": 2**70}}, id="an integer past 64 bits in metadata"),
    pytest.param({"metadata": {"f": 1e308}}, id="a float that PostgreSQL gives back as a huge integer"),
]


@pytest.mark.parametrize("fields", HOSTILE_ALERTS)
async def test_a_hostile_alert_is_refused_and_history_stays_readable(
    relay: RelayHarness, fields: dict[str, Any]
) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    ml = await relay.producer(token, stream_id)
    await send_raw(ml, {"type": "alert", "streamId": stream_id, "severity": "low", "message": "m", **fields})
    refusal = await ml.until("error")
    assert refusal["code"] in ("invalid-message", "too-large")
    await still_open(ml)
    page = await relay.api("GET", "/api/alerts", token=token)
    assert page.status == 200
    assert page.json["alerts"] == []


async def test_lone_surrogates_are_refused_as_json(relay: RelayHarness) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    ml = await relay.producer(token, stream_id)
    await ml.ws.send(f'{{"type": "alert", "streamId": "{stream_id}", "severity": "low", "message": "\\ud800"}}')
    assert (await ml.until("error"))["code"] == "invalid-json"
    await still_open(ml)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param("not base64 at all!", id="not base64"),
        pytest.param("QUJD=", id="bad padding"),
        pytest.param("QQ===", id="too much padding"),
    ],
)
async def test_a_json_frame_that_is_not_base64_goes_nowhere(relay: RelayHarness, data: str) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    phone = await relay.producer(token, stream_id)
    viewer = await relay.consumer(token, stream_id, consumes=["video-frame"], frameFormat="binary")
    await phone.send({"type": "video-frame", "streamId": stream_id, "data": data, "timestamp": 1})
    assert (await phone.until("error"))["code"] == "invalid-message"
    good = base64.b64encode(b"\xff\xd8\xff").decode()
    await phone.send({"type": "video-frame", "streamId": stream_id, "data": good, "timestamp": 2})
    header, image = await viewer.recv()  # type: ignore[misc]
    assert (header["timestamp"], image) == (2, b"\xff\xd8\xff"), "the bad frame never reached the consumer"


async def test_a_binary_header_timestamp_of_2_to_the_64_is_refused(relay: RelayHarness) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    phone = await relay.producer(token, stream_id)
    header = json.dumps({"type": "video-frame", "streamId": stream_id, "timestamp": 2**64}).encode()
    await phone.ws.send(LENGTH.pack(len(header)) + header + b"\xff\xd8")
    assert (await phone.until("error"))["code"] in ("invalid-message", "invalid-json")
    await still_open(phone)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"deviceName": "cam", "metadata": deep(250)}, id="metadata nested 250 levels"),
        pytest.param({"deviceName": "cam \u0000"}, id="NUL in the name"),
        pytest.param({"deviceName": "cam", "deviceType": "\u0000"}, id="NUL in the type"),
        pytest.param({"deviceName": "cam", "metadata": {"k": "v\u0000"}}, id="NUL in metadata"),
        pytest.param({"deviceName": "cam", "metadata": {"blob": "x" * 20_000}}, id="metadata over 16 KB"),
    ],
)
async def test_a_hostile_stream_registration_is_refused_and_the_list_stays_readable(
    relay: RelayHarness, body: dict[str, Any]
) -> None:
    _, token = await relay.user()
    response = await relay.api("POST", "/api/streams/register", token=token, raw_body=json.dumps(body).encode())
    assert response.status in (400, 413), response.body
    assert response.json["error"]["code"] in ("invalid-request", "too-large")
    listed = await relay.api("GET", "/api/streams/list", token=token)
    assert listed.status == 200
    assert listed.json["streams"] == []


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("since=0001-01-01T00:00:00%2B01:00", id="since before year 1 in UTC"),
        pytest.param("until=9999-12-31T23:59:59-10:00", id="until after year 9999 in UTC"),
        pytest.param(
            "cursor=" + base64.urlsafe_b64encode(b"a1:" + b"9" * 30).decode().rstrip("="), id="cursor past 64 bits"
        ),
        pytest.param("limit=99999999999999999999999", id="huge limit"),
        pytest.param("q=" + "x" * 300, id="long text search"),
        pytest.param("q=%00", id="NUL text search"),
        pytest.param("objectType=%ED%A0%80", id="a lone surrogate"),
    ],
)
async def test_hostile_history_queries_get_a_400_not_a_500(relay: RelayHarness, query: str) -> None:
    _, token = await relay.user()
    for path in ("/api/alerts", "/api/alerts/export"):
        response = await relay.api("GET", f"{path}?{query}", token=token)
        assert response.status in (200, 400), (path, response.status, response.body[:200])
        if response.status == 400:
            assert response.json["error"]["code"] == "invalid-request"


async def test_the_nastiest_accepted_inputs_are_read_back_by_every_reader(relay: RelayHarness) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token, "Лобби 📷 <b>&</b>")
    ml = await relay.producer(token, stream_id)
    nasty = [
        {"message": "<script>alert(1)</script> ✓ \u2028 \t tab", "metadata": deep(31), "timestamp": 2**63 - 1},
        {
            "message": "zero time",
            "metadata": {"n": 2**63 - 1, "f": 9.2e18, "neg": -(2**63) + 1, "tiny": 5e-324},
            "timestamp": 0,
        },
        {"message": "x" * 2000, "metadata": {"blob": "é" * 5000}, "ref": "r" * 200},
        {"message": "emoji 🚨", "metadata": {"objectType": "😀", "confidence": 1, "location": {"x": 0, "y": 1}}},
    ]
    for index, fields in enumerate(nasty):
        await send_raw(
            ml, {"type": "alert", "streamId": stream_id, "severity": "critical", "ref": f"n{index}", **fields}
        )
        stored = await ml.until("alert-stored")
        assert stored["ref"] == fields.get("ref", f"n{index}")

    page = await relay.api("GET", "/api/alerts?limit=10", token=token)
    assert page.status == 200
    assert len(page.json["alerts"]) == len(nasty)
    for format in ("json", "csv", "parquet"):
        exported = await relay.api("GET", f"/api/alerts/export?format={format}", token=token)
        assert exported.status == 200, (format, exported.body[:300])
        assert exported.body
    streams = await relay.api("GET", "/api/streams/list", token=token)
    assert streams.json["streams"][0]["deviceName"] == "Лобби 📷 <b>&</b>"
