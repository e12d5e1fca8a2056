"""Two relay nodes on one database and one Redis are full peers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from tests.support import RelayHarness, running_relay, service_url

pytestmark = pytest.mark.redis


@pytest.fixture(params=["sharded", "plain"])
async def two_nodes(
    request: pytest.FixtureRequest, database_url: str
) -> AsyncIterator[tuple[RelayHarness, RelayHarness]]:
    """Two nodes on sharded pub/sub (Redis 7, as here), or on plain pub/sub as they use with Redis 6."""
    base = service_url("RELAY_TEST_REDIS_URL", "Redis")
    # A database number is shared by every test run on this Redis; channels are per stream id, which is random.
    options = {"ping_interval": 0, "max_fps": 0, "max_alerts_per_second": 0, "broker_url": base}
    async with running_relay(database_url, **options) as first, running_relay(database_url, **options) as second:
        for node in (first, second):
            assert node.relay.broker.sharded  # type: ignore[attr-defined]
            node.relay.broker.sharded = request.param == "sharded"  # type: ignore[attr-defined]
        yield first, second


async def test_frames_alerts_and_status_cross_nodes(two_nodes: tuple[RelayHarness, RelayHarness]) -> None:
    first, second = two_nodes
    _, token = await first.user(f"n{uuid.uuid4().hex[:6]}")
    stream_id = await first.stream(token)

    viewer = await second.consumer(
        token, stream_id, consumes=["video-frame", "alert", "stream-status"], frameFormat="binary"
    )
    await viewer.expect("stream-status", status="offline")
    phone = await first.producer(token, stream_id)
    await viewer.expect("stream-status", status="online")
    await phone.send_frame(stream_id, timestamp=99)
    # The frame is relayed at once; the status change after it is written: either may come first.
    first_two = [await viewer.recv(), await viewer.recv()]
    (header, _), status = sorted(first_two, key=lambda m: isinstance(m, dict))  # type: ignore[misc]
    assert header["timestamp"] == 99
    assert status["status"] == "streaming"  # type: ignore[call-overload]

    ml = await second.consumer(token, stream_id, consumes=[], produces=["alert"])
    await ml.send({"type": "alert", "streamId": stream_id, "severity": "high", "message": "across", "ref": "x1"})
    stored = await ml.expect("alert-stored")
    assert (await phone.until("alert"))["id"] == stored["id"]
    assert (await viewer.until("alert"))["id"] == stored["id"]

    await phone.close()
    await viewer.until("stream-status", status="offline")


async def test_a_node_carries_only_streams_its_clients_want(two_nodes: tuple[RelayHarness, RelayHarness]) -> None:
    first, second = two_nodes
    _, token = await first.user(f"n{uuid.uuid4().hex[:6]}")
    stream_id = await first.stream(token)
    viewer = await second.consumer(token, stream_id, consumes=["alert"])
    broker = second.relay.broker
    assert stream_id.encode() in b"".join(broker._subscribed)  # type: ignore[attr-defined]
    await viewer.send({"type": "unsubscribe", "streamId": stream_id})
    await viewer.expect("unsubscribed")
    assert not second.relay.hub.has_consumers(stream_id)


async def test_the_phones_node_hears_its_alerts_not_its_own_frames_back(
    two_nodes: tuple[RelayHarness, RelayHarness],
) -> None:
    first, second = two_nodes
    _, token = await first.user(f"n{uuid.uuid4().hex[:6]}")
    stream_id = await first.stream(token)
    phone = await first.producer(token, stream_id)  # wants the stream's alerts
    viewer = await second.consumer(token, stream_id, consumes=["video-frame", "alert"], frameFormat="binary")
    await phone.send_frame(stream_id, timestamp=5)
    while isinstance(message := await viewer.recv(), dict):  # status changes may come before the frame
        pass
    assert message[0]["timestamp"] == 5

    sharded = first.relay.broker.sharded  # type: ignore[attr-defined]
    command = "PUBSUB SHARDNUMSUB" if sharded else "PUBSUB NUMSUB"
    client = redis.from_url(service_url("RELAY_TEST_REDIS_URL", "Redis"))
    try:
        answer = await client.execute_command(command, f"vigil:frames:{stream_id}", f"vigil:stream:{stream_id}")
    finally:
        await client.aclose()
    counts = dict(answer)  # redis-py pairs them up
    assert counts == {f"vigil:frames:{stream_id}".encode(): 1, f"vigil:stream:{stream_id}".encode(): 2}

    ml = await second.consumer(token, stream_id, consumes=[], produces=["alert"])
    await ml.send({"type": "alert", "streamId": stream_id, "severity": "low", "message": "m", "ref": "r"})
    stored = await ml.expect("alert-stored")
    assert (await phone.until("alert"))["id"] == stored["id"]


async def test_a_burst_of_frames_from_another_node_reaches_each_form_in_order_and_its_snapshot_buffer(
    two_nodes: tuple[RelayHarness, RelayHarness],
) -> None:
    """Frames from the broker go to the hub as the node's own do: fanned out in both forms, in order
    (many can come in one read of Redis), and kept for the snapshots of alerts stored on this node."""
    first, second = two_nodes
    _, token = await first.user(f"n{uuid.uuid4().hex[:6]}")
    stream_id = await first.stream(token)
    binary = await second.consumer(token, stream_id, consumes=["video-frame"], frameFormat="binary")
    text = await second.consumer(token, stream_id, consumes=["video-frame"], frameFormat="json")
    phone = await first.producer(token, stream_id)
    images = {timestamp: bytes([timestamp]) * (100 + timestamp) for timestamp in range(1, 7)}
    for timestamp, image in images.items():
        await phone.send_frame(stream_id, image, timestamp=timestamp)
    for viewer in (binary, text):
        received = []
        while len(received) < len(images):
            message = await viewer.recv()
            header = message[0] if isinstance(message, tuple) else message
            received.append(header["timestamp"])
        assert received == list(images), "every frame, in order"
    ml = await second.consumer(token, stream_id, consumes=[], produces=["alert"])
    await ml.send(
        {"type": "alert", "streamId": stream_id, "severity": "low", "message": "m", "ref": "r", "frameTimestamp": 4}
    )
    stored = await ml.expect("alert-stored")
    snapshot = await second.api("GET", f"/api/alerts/{stored['id']}/snapshot", token=token)
    assert (snapshot.status, snapshot.body) == (200, images[4])
