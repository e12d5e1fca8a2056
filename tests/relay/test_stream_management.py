"""Renaming and deleting streams, over real sockets and real databases, on one node and on two."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from relay.store.models import Alert, AlertSnapshot
from tests.services import private_redis
from tests.support import JPEG, Client, RelayHarness, running_relay


async def _alert(client: Client, stream_id: str, message: str = "person") -> dict[str, object]:
    await client.send({"type": "alert", "streamId": stream_id, "severity": "high", "message": message})
    return await client.until("alert-stored")


async def test_a_stream_is_renamed_and_given_new_metadata_within_the_bounds_of_a_registration(
    relay: RelayHarness,
) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token, "Front door")
    renamed = await relay.api("PATCH", f"/api/streams/{stream_id}", token=token, body={"deviceName": " Gate "})
    assert renamed.status == 200, renamed.body
    assert renamed.headers["Content-Type"] == "application/json"
    assert (renamed.json["id"], renamed.json["deviceName"], renamed.json["metadata"]) == (stream_id, "Gate", {})
    changed = await relay.api("PATCH", f"/api/streams/{stream_id}", token=token, body={"metadata": {"floor": 2}})
    assert (changed.json["deviceName"], changed.json["metadata"]) == ("Gate", {"floor": 2})
    listed = (await relay.api("GET", "/api/streams/list", token=token)).json["streams"]
    assert listed == [changed.json]

    for body, status in (
        ({}, 400),
        ({"deviceType": "tablet"}, 400),
        ({"deviceName": ""}, 400),
        ({"deviceName": "   "}, 400),
        ({"deviceName": "x" * 201}, 400),
        ({"deviceName": "a\x00b"}, 400),
        ({"deviceName": 5}, 400),
        ({"metadata": []}, 400),
        ({"metadata": {"deep": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}, 400),
        ({"metadata": {"big": "x" * 17_000}}, 413),
    ):
        answer = await relay.api("PATCH", f"/api/streams/{stream_id}", token=token, body=body)
        assert answer.status == status, (body, answer.body)
        assert "error" in answer.json
    assert (await relay.api("PATCH", f"/api/streams/{stream_id}", token=token, raw_body=b"[1")).status == 400
    cleared = await relay.api("PATCH", f"/api/streams/{stream_id}", token=token, body={"metadata": None})
    assert cleared.json["metadata"] == {}

    _, stranger = await relay.user()
    theirs = await relay.api("PATCH", f"/api/streams/{stream_id}", token=stranger, body={"deviceName": "mine"})
    assert theirs.status == 404
    assert (await relay.api("PATCH", "/api/streams/stream_nope", token=token, body={"deviceName": "x"})).status == 404
    assert (await relay.api("PATCH", f"/api/streams/{stream_id}", body={"deviceName": "x"})).status == 401


async def test_deleting_a_stream_deletes_its_alerts_and_snapshots_and_frees_its_clients(relay: RelayHarness) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    kept_stream = await relay.stream(token, "other")
    phone = await relay.producer(token, stream_id)
    ml = await relay.consumer(token, stream_id, consumes=["video-frame"], produces=["alert"], frameFormat="binary")
    await phone.send_frame(stream_id, JPEG, timestamp=5)
    await ml.recv()
    stored = await _alert(ml, stream_id)
    other_ml = await relay.consumer(token, kept_stream, consumes=["alert"], produces=["alert"])
    other = await _alert(other_ml, kept_stream)
    async with relay.relay.store.engine.connect() as connection:
        assert await connection.scalar(select(func.count()).select_from(AlertSnapshot)) == 1

    _, stranger = await relay.user()
    assert (await relay.api("DELETE", f"/api/streams/{stream_id}", token=stranger)).status == 404
    assert (await relay.api("DELETE", f"/api/streams/{stream_id}")).status == 401
    deleted = await relay.api("DELETE", f"/api/streams/{stream_id}", token=token)
    assert deleted.status == 204
    assert deleted.body == b""
    await phone.until("stream-deleted", streamId=stream_id)  # after the alert it consumes
    await ml.expect("stream-deleted", streamId=stream_id)

    assert (await relay.api("DELETE", f"/api/streams/{stream_id}", token=token)).status == 404
    assert (await relay.api("GET", f"/api/alerts/{stored['id']}", token=token)).status == 404
    assert [s["id"] for s in (await relay.api("GET", "/api/streams/list", token=token)).json["streams"]] == [
        kept_stream
    ]
    assert [a["id"] for a in (await relay.api("GET", "/api/alerts", token=token)).json["alerts"]] == [other["id"]]
    async with relay.relay.store.engine.connect() as connection:
        assert await connection.scalar(select(func.count()).select_from(AlertSnapshot)) == 0
        assert await connection.scalar(select(func.count()).select_from(Alert)) == 1

    await phone.send_frame(stream_id, JPEG)
    await phone.expect("error", code="forbidden", streamId=stream_id)
    await ml.send({"type": "alert", "streamId": stream_id, "severity": "low", "message": "late"})
    await ml.expect("error", code="forbidden", streamId=stream_id)
    await phone.send({"type": "ping"})
    await phone.expect("pong")  # still connected
    await other_ml.send({"type": "ping"})
    await other_ml.expect("pong")  # the other stream's client heard nothing


async def test_a_deleted_streams_alerts_leave_the_analytics_copy(relay: RelayHarness) -> None:
    _, token = await relay.user()
    gone, kept = await relay.stream(token, "gone"), await relay.stream(token, "kept")
    ml = await relay.consumer(token, gone, consumes=["alert"], produces=["alert"])
    await _alert(ml, gone)
    await ml.send({"type": "subscribe", "streamId": kept, "consumes": [], "produces": ["alert"]})
    await ml.until("subscribed", streamId=kept)
    await _alert(ml, kept)
    assert (await relay.api("POST", "/api/analytics/refresh", token=token)).json["alertsWritten"] == 2
    assert (await relay.api("DELETE", f"/api/streams/{gone}", token=token)).status == 204
    mix = (await relay.api("GET", "/api/analytics/severity-mix", token=token)).json["rows"]
    assert [row[0] for row in mix] == [kept]


@pytest.mark.redis
async def test_a_stream_deleted_on_one_node_ends_at_once_on_every_node(
    two_nodes: tuple[RelayHarness, RelayHarness],
) -> None:
    first, second = two_nodes
    _, token = await first.user()
    stream_id = await first.stream(token)
    phone = await first.producer(token, stream_id)
    dashboard = await second.consumer(token, stream_id, consumes=["alert", "stream-status"])
    ml = await second.consumer(token, stream_id, consumes=["video-frame"], produces=["alert"])
    stored = await _alert(ml, stream_id)
    await dashboard.until("alert", id=stored["id"])
    # Both nodes know the owner now (the producer's node and the consumers').
    _, stranger = await second.user()
    assert (await first.api("DELETE", f"/api/streams/{stream_id}", token=stranger)).status == 404
    assert (await second.api("DELETE", f"/api/streams/{stream_id}", token=stranger)).status == 404

    assert (await first.api("DELETE", f"/api/streams/{stream_id}", token=token)).status == 204
    await phone.until("stream-deleted", streamId=stream_id)
    await dashboard.until("stream-deleted", streamId=stream_id)
    await ml.until("stream-deleted", streamId=stream_id)

    await phone.send_frame(stream_id, JPEG)
    await phone.until("error", code="forbidden", streamId=stream_id)
    await ml.send({"type": "alert", "streamId": stream_id, "severity": "low", "message": "late"})
    await ml.until("error", code="forbidden", streamId=stream_id)
    await ml.send_frame(stream_id, JPEG)
    await ml.until("error", code="forbidden", streamId=stream_id)
    for client in (phone, dashboard):  # registering or subscribing again is refused on either node
        await client.send({"type": "subscribe", "streamId": stream_id, "consumes": ["alert"]})
        await client.until("error", code="forbidden", streamId=stream_id)
    await dashboard.send({"type": "ping"})
    await dashboard.until("pong")
    assert (await second.api("GET", "/api/alerts", token=token)).json["alerts"] == []


@pytest.mark.redis
async def test_a_node_that_missed_the_deletion_while_redis_was_down_catches_up(database_url: str) -> None:
    async with private_redis() as redis:
        options = {"ping_interval": 0, "broker_url": redis.url}
        async with running_relay(database_url, **options) as first, running_relay(database_url, **options) as second:
            _, token = await first.user()
            stream_id = await first.stream(token)
            dashboard = await second.consumer(token, stream_id, consumes=["alert"])
            await redis.stop()
            assert (await first.api("DELETE", f"/api/streams/{stream_id}", token=token)).status == 204
            await redis.start()
            await dashboard.until("stream-deleted", streamId=stream_id)  # looked up again once Redis is back
            await dashboard.send({"type": "subscribe", "streamId": stream_id, "consumes": ["alert"]})
            await dashboard.until("error", code="forbidden", streamId=stream_id)
