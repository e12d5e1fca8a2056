"""Backpressure, alert replay after a reconnect, and what the relay promises about both."""

from __future__ import annotations

import asyncio

import numpy as np

from relay.routing.connection import Connection
from tests.support import Client, RelayHarness, make_jpeg


def consumer_connections(relay: RelayHarness, stream_id: str) -> list[Connection]:
    return list(relay.relay.hub.get_consumers(stream_id, "video-frame"))


async def test_a_stuck_consumer_neither_slows_others_nor_loses_alerts(relay: RelayHarness) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    producer = await relay.producer(token, stream_id)
    fast = await relay.consumer(token, stream_id, consumes=["video-frame"], frameFormat="binary")
    stuck = await relay.consumer(token, stream_id, consumes=["video-frame", "alert"], frameFormat="binary")
    ml = await relay.consumer(token, stream_id, consumes=[], produces=["alert"])
    stuck_connection = next(c for c in consumer_connections(relay, stream_id) if "alert" in c.subscriptions[stream_id])
    stuck.ws.transport.pause_reading()  # it stops reading: its socket buffers fill up

    big = make_jpeg(90) + np.random.default_rng(1).bytes(256 * 1024)  # incompressible filler
    sent, alerts = 200, []
    for index in range(sent):
        await producer.send_frame(stream_id, big)
        header, _ = await fast.recv()  # type: ignore[misc]
        assert header["streamId"] == stream_id  # in lockstep: a relay blocked on `stuck` would hang here
        if index % 40 == 0:
            await ml.send({"type": "alert", "streamId": stream_id, "severity": "high", "message": f"a{index}"})
            alerts.append((await ml.expect("alert-stored"))["id"])
    assert stuck_connection.outbox.frames_dropped > 0

    stuck.ws.transport.resume_reading()
    received_alerts, frames = [], 0
    while len(received_alerts) < len(alerts) or frames + stuck_connection.outbox.frames_dropped < sent:
        message = await stuck.recv()
        if isinstance(message, tuple):
            frames += 1
        else:
            received_alerts.append(message["id"])
    assert received_alerts == alerts, "every alert, in order, none dropped"
    assert frames + stuck_connection.outbox.frames_dropped == sent, "each frame was delivered or counted as dropped"


async def collect_alerts(client: Client, count: int) -> list[dict[str, object]]:
    received = []
    while len(received) < count:
        message = await client.recv()
        if isinstance(message, dict) and message["type"] == "alert":
            received.append(message)
    return received


async def test_since_alert_id_replays_what_was_missed_then_continues_live(relay: RelayHarness) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    ml = await relay.consumer(token, stream_id, consumes=[], produces=["alert"])

    async def send(ref: str) -> str:
        await ml.send({"type": "alert", "streamId": stream_id, "severity": "low", "message": ref, "ref": ref})
        return str((await ml.expect("alert-stored", ref=ref))["id"])

    dashboard = await relay.consumer(token, stream_id, consumes=["alert"])
    ids = [await send(f"n{i}") for i in range(3)]
    seen = await collect_alerts(dashboard, 3)
    assert [a["id"] for a in seen] == ids
    await dashboard.close()

    missed = [await send(f"n{i}") for i in range(3, 6)]
    again = await relay.consumer(token, stream_id, consumes=["alert"], sinceAlertId=ids[-1])
    replayed = await collect_alerts(again, 3)
    assert [a["id"] for a in replayed] == missed
    live = await send("n6")
    assert [a["id"] for a in await collect_alerts(again, 1)] == [live]


async def test_replay_and_live_alerts_meet_without_gap_or_duplicate(relay: RelayHarness) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    ml = await relay.consumer(token, stream_id, consumes=[], produces=["alert"])
    await ml.send({"type": "alert", "streamId": stream_id, "severity": "low", "message": "start", "ref": "start"})
    start = (await ml.expect("alert-stored"))["id"]
    total = 120

    async def keep_sending() -> None:
        for i in range(total):
            await ml.send({"type": "alert", "streamId": stream_id, "severity": "low", "message": "m", "ref": f"n{i}"})
            await ml.expect("alert-stored", ref=f"n{i}")

    sender = asyncio.create_task(keep_sending())
    await asyncio.sleep(0)  # let some alerts be stored before the subscription
    consumer = await relay.consumer(token, stream_id, consumes=["alert"], sinceAlertId=start)
    received = await collect_alerts(consumer, total)
    await sender
    assert [a["ref"] for a in received] == [f"n{i}" for i in range(total)]


async def test_an_unknown_since_alert_id_is_refused(relay: RelayHarness) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    client = await relay.connect(token)
    await client.send({"type": "subscribe", "streamId": stream_id, "sinceAlertId": "alert_nope"})
    await client.expect("error", code="invalid-message", streamId=stream_id)


async def test_a_phone_that_registers_again_with_since_alert_id_gets_what_it_missed_once_then_live(
    relay: RelayHarness,
) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    ml = await relay.consumer(token, stream_id, consumes=[], produces=["alert"])
    await ml.send({"type": "alert", "streamId": stream_id, "severity": "low", "message": "start", "ref": "start"})
    start = (await ml.expect("alert-stored"))["id"]
    total = 120

    async def keep_sending() -> None:
        for i in range(total):
            await ml.send({"type": "alert", "streamId": stream_id, "severity": "low", "message": "m", "ref": f"n{i}"})
            await ml.expect("alert-stored", ref=f"n{i}")

    sender = asyncio.create_task(keep_sending())
    await asyncio.sleep(0)  # let some alerts be stored before the registration
    phone = await relay.connect(token)
    await phone.send({"type": "register", "streamId": stream_id, "sinceAlertId": start})
    await phone.expect("registered", streamId=stream_id)  # the replay comes after it
    received = await collect_alerts(phone, total)
    await sender
    assert [a["ref"] for a in received] == [f"n{i}" for i in range(total)]
    assert len({a["id"] for a in received}) == total

    await phone.send({"type": "register", "streamId": stream_id, "sinceAlertId": "alert_nope"})
    await phone.expect("error", code="invalid-message", streamId=stream_id)
    await phone.send({"type": "register", "streamId": stream_id, "sinceAlertId": 5})
    await phone.expect("error", code="invalid-message", streamId=stream_id)
    _, stranger = await relay.user()
    theirs = await relay.connect(stranger)
    await theirs.send({"type": "register", "streamId": stream_id, "sinceAlertId": start})
    await theirs.expect("error", code="forbidden", streamId=stream_id)
