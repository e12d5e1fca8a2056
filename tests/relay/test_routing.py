"""Frames and alerts reach exactly the consumers that asked for them, in their form."""

from __future__ import annotations

import base64

from relay.wire import VideoFrame
from tests.support import JPEG, Client, RelayHarness, make_jpeg


async def assert_nothing_before(client: Client, sentinel_type: str) -> dict[str, object]:
    """The next message is the sentinel: nothing else (no stray frame or alert) came first."""
    message = await client.recv()
    assert isinstance(message, dict), f"expected {sentinel_type}, got a binary frame"
    assert message["type"] == sentinel_type, f"expected {sentinel_type} first, got {message}"
    return message


async def test_binary_frames_reach_each_consumer_in_its_own_form(relay: RelayHarness) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    producer = await relay.producer(token, stream_id)
    as_json = await relay.consumer(token, stream_id, consumes=["video-frame"])
    as_binary = await relay.consumer(token, stream_id, consumes=["video-frame"], frameFormat="binary")
    image = make_jpeg(200)
    await producer.send_frame(stream_id, image, timestamp=1730000000000)

    header, received = await as_binary.recv()  # type: ignore[misc]
    assert header == {
        "type": "video-frame",
        "streamId": stream_id,
        "timestamp": 1730000000000,
        "contentType": "image/jpeg",
    }
    assert received == image
    message = await as_json.expect("video-frame", streamId=stream_id, timestamp=1730000000000)
    assert base64.b64decode(message["data"]) == image
    assert message["contentType"] == "image/jpeg"


async def test_json_frames_reach_each_consumer_in_its_own_form(relay: RelayHarness) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    producer = await relay.producer(token, stream_id)
    as_json = await relay.consumer(token, stream_id, consumes=["video-frame"])
    as_binary = await relay.consumer(token, stream_id, consumes=["video-frame"], frameFormat="binary")
    data = base64.b64encode(JPEG).decode()
    await producer.send({"type": "video-frame", "streamId": stream_id, "data": data, "timestamp": 5})

    message = await as_json.expect("video-frame", data=data, timestamp=5)
    assert message["streamId"] == stream_id
    header, received = await as_binary.recv()  # type: ignore[misc]
    assert header["timestamp"] == 5
    assert received == JPEG


async def test_a_frame_is_converted_once_however_many_consumers(relay: RelayHarness) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    producer = await relay.producer(token, stream_id)
    json_consumers = [await relay.consumer(token, stream_id, consumes=["video-frame"]) for _ in range(3)]
    binary_consumers = [
        await relay.consumer(token, stream_id, consumes=["video-frame"], frameFormat="binary") for _ in range(3)
    ]
    before = VideoFrame.conversions
    await producer.send_frame(stream_id)
    for consumer in json_consumers:
        await consumer.expect("video-frame")
    for consumer in binary_consumers:
        assert isinstance(await consumer.recv(), tuple)
    assert VideoFrame.conversions - before == 1


async def test_frames_go_only_to_consumers_of_frames_of_that_stream(relay: RelayHarness) -> None:
    _, token = await relay.user()
    watched, other = await relay.stream(token, "watched"), await relay.stream(token, "other")
    producer = await relay.producer(token, watched)
    viewer = await relay.consumer(token, watched, consumes=["video-frame", "alert"])
    alerts_only = await relay.consumer(token, watched, consumes=["alert"])
    elsewhere = await relay.consumer(token, other, consumes=["video-frame", "alert"])
    ml = await relay.consumer(token, watched, consumes=[], produces=["alert"])
    ml_other = await relay.consumer(token, other, consumes=[], produces=["alert"])

    await producer.send_frame(watched)
    await viewer.expect("video-frame")
    await ml.send({"type": "alert", "streamId": watched, "severity": "low", "message": "sentinel"})
    await ml.expect("alert-stored")
    await ml_other.send({"type": "alert", "streamId": other, "severity": "low", "message": "sentinel"})
    await ml_other.expect("alert-stored")

    await assert_nothing_before(viewer, "alert")
    await assert_nothing_before(alerts_only, "alert")
    await assert_nothing_before(elsewhere, "alert")


async def test_alerts_are_stored_confirmed_and_fanned_out_but_not_echoed(relay: RelayHarness) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    phone = await relay.producer(token, stream_id)
    dashboard = await relay.consumer(token, stream_id, consumes=["alert"])
    ml = await relay.consumer(token, stream_id, consumes=["alert"], produces=["alert"])
    alert = {
        "type": "alert",
        "streamId": stream_id,
        "severity": "high",
        "message": "person in view",
        "metadata": {"confidence": 0.93, "location": {"x": 0.4, "y": 0.6}, "objectType": "person"},
        "timestamp": 1730000000000,
        "ref": "ml-1",
    }
    await ml.send(alert)
    stored = await ml.expect("alert-stored", ref="ml-1", streamId=stream_id)
    assert stored["id"].startswith("alert_")

    for receiver in (phone, dashboard):
        received = await receiver.expect("alert", id=stored["id"], ref="ml-1")
        assert received["metadata"] == alert["metadata"]
        assert received["timestamp"] == 1730000000000
        assert received["createdAt"].endswith("Z")

    history = (await relay.api("GET", "/api/alerts", token=token)).json["alerts"]
    assert [a["id"] for a in history] == [stored["id"]]

    # The sender does not get its own alert back: its next message is the pong.
    await ml.send({"type": "ping"})
    await assert_nothing_before(ml, "pong")


async def test_a_resent_alert_is_stored_and_sent_once(relay: RelayHarness) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    dashboard = await relay.consumer(token, stream_id, consumes=["alert"])
    ml = await relay.consumer(token, stream_id, consumes=[], produces=["alert"])
    alert = {"type": "alert", "streamId": stream_id, "severity": "medium", "message": "m", "ref": "same"}
    first_ids = set()
    for _ in range(3):
        await ml.send(alert)
        first_ids.add((await ml.expect("alert-stored", ref="same"))["id"])
    assert len(first_ids) == 1
    await ml.send({**alert, "ref": "next"})
    await ml.expect("alert-stored", ref="next")

    assert (await dashboard.expect("alert"))["ref"] == "same"
    assert (await dashboard.expect("alert"))["ref"] == "next"
    history = (await relay.api("GET", "/api/alerts", token=token)).json["alerts"]
    assert [a["ref"] for a in history] == ["next", "same"]


async def test_a_registered_phone_may_send_alerts_for_its_stream(relay: RelayHarness) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    phone = await relay.producer(token, stream_id, produces=["video-frame"])
    dashboard = await relay.consumer(token, stream_id, consumes=["alert"])
    await phone.send({"type": "alert", "streamId": stream_id, "severity": "critical", "message": "panic button"})
    await phone.expect("alert-stored")
    received = await dashboard.expect("alert", severity="critical")
    assert isinstance(received["timestamp"], int), "a missing timestamp is the relay's receive time"
