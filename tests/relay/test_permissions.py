"""A user touches only their own streams: REST 404, WebSocket ``forbidden``."""

from __future__ import annotations

import pytest

from tests.support import RelayHarness


async def test_rest_hides_other_users_streams_and_alerts(relay: RelayHarness) -> None:
    _, alice = await relay.user("alice")
    _, bob = await relay.user("bob")
    alice_stream = await relay.stream(alice, "alice-phone")
    await relay.stream(bob, "bob-phone")
    ml = await relay.consumer(alice, alice_stream, consumes=[], produces=["alert"])
    await ml.send({"type": "alert", "streamId": alice_stream, "severity": "low", "message": "private"})
    await ml.expect("alert-stored")

    listed = (await relay.api("GET", "/api/streams/list", token=bob)).json["streams"]
    assert [s["deviceName"] for s in listed] == ["bob-phone"]
    assert (await relay.api("GET", "/api/alerts", token=bob)).json == {"alerts": [], "nextCursor": None}
    for path in (f"/api/alerts?streamId={alice_stream}", f"/api/alerts/export?format=csv&streamId={alice_stream}"):
        response = await relay.api("GET", path, token=bob)
        assert response.status == 404
        assert response.json["error"]["code"] == "not-found"
    assert len((await relay.api("GET", f"/api/alerts?streamId={alice_stream}", token=alice)).json["alerts"]) == 1


@pytest.mark.parametrize("kind", ["register", "subscribe"])
async def test_claiming_another_users_stream_is_forbidden(relay: RelayHarness, kind: str) -> None:
    _, alice = await relay.user()
    _, bob = await relay.user()
    alice_stream = await relay.stream(alice)
    client = await relay.connect(bob)
    for stream_id in (alice_stream, "stream_does_not_exist"):
        await client.send({"type": kind, "streamId": stream_id})
        await client.expect("error", code="forbidden", streamId=stream_id)


async def test_frames_and_alerts_for_another_users_stream_are_forbidden_and_go_nowhere(relay: RelayHarness) -> None:
    _, alice = await relay.user()
    _, bob = await relay.user()
    alice_stream = await relay.stream(alice)
    watcher = await relay.consumer(alice, alice_stream, consumes=["video-frame", "alert"])
    intruder = await relay.connect(bob)
    await intruder.send_frame(alice_stream)
    await intruder.expect("error", code="forbidden", streamId=alice_stream)
    await intruder.send({"type": "alert", "streamId": alice_stream, "severity": "high", "message": "x", "ref": "r"})
    await intruder.expect("error", code="forbidden", ref="r")

    ml = await relay.consumer(alice, alice_stream, consumes=[], produces=["alert"])
    await ml.send({"type": "alert", "streamId": alice_stream, "severity": "low", "message": "sentinel"})
    await ml.expect("alert-stored")
    assert (await watcher.expect("alert"))["message"] == "sentinel"
    history = (await relay.api("GET", "/api/alerts", token=alice)).json["alerts"]
    assert [a["message"] for a in history] == ["sentinel"]


async def test_own_stream_without_the_right_to_produce_is_not_registered(relay: RelayHarness) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    dashboard = await relay.consumer(token, stream_id, consumes=["alert"])
    await dashboard.send_frame(stream_id)
    await dashboard.expect("error", code="not-registered", streamId=stream_id)
    await dashboard.send({"type": "alert", "streamId": stream_id, "severity": "low", "message": "m", "ref": "a"})
    await dashboard.expect("error", code="not-registered", ref="a")

    fresh = await relay.connect(token)
    await fresh.send_frame(stream_id)
    await fresh.expect("error", code="not-registered")


async def test_an_ml_service_produces_only_what_it_listed(relay: RelayHarness) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    ml = await relay.consumer(token, stream_id, consumes=["video-frame"], produces=["alert"])
    await ml.send_frame(stream_id)
    await ml.expect("error", code="not-registered")
    await ml.send({"type": "alert", "streamId": stream_id, "severity": "low", "message": "ok"})
    await ml.expect("alert-stored")


async def test_unsubscribe_ends_consuming_and_producing(relay: RelayHarness) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    ml = await relay.consumer(token, stream_id, consumes=["alert"], produces=["alert"])
    await ml.send({"type": "unsubscribe", "streamId": stream_id})
    await ml.expect("unsubscribed", streamId=stream_id)
    await ml.send({"type": "alert", "streamId": stream_id, "severity": "low", "message": "late"})
    await ml.expect("error", code="not-registered")
