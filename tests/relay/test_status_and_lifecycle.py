"""Stream status, the heartbeat, and cleanup when connections go."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from relay.app import Relay
from relay.clock import utcnow
from relay.config import Settings
from relay.routing.connection import Connection
from relay.wire import AlertIn
from tests.raw_websocket import RawWebSocket, client_frame
from tests.support import GUARD, RelayHarness, running_relay, settings_for_tests


def count_disconnects(relay: RelayHarness) -> asyncio.Queue[Connection]:
    """A queue that receives each connection the relay has finished cleaning up after."""
    done: asyncio.Queue[Connection] = asyncio.Queue()
    router = relay.relay.router
    original = router.disconnect

    def disconnect(connection: Connection) -> None:
        original(connection)
        done.put_nowait(connection)

    router.disconnect = disconnect  # type: ignore[method-assign]
    return done


async def listed_status(relay: RelayHarness, token: str, stream_id: str) -> dict[str, object]:
    streams = (await relay.api("GET", "/api/streams/list", token=token)).json["streams"]
    return next(s for s in streams if s["id"] == stream_id)


async def test_status_goes_online_streaming_offline_written_and_broadcast(relay: RelayHarness) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    listed = await listed_status(relay, token, stream_id)
    assert listed["status"] == "offline"
    assert listed["lastSeen"] is None
    watcher = await relay.consumer(token, stream_id, consumes=["stream-status"])
    await watcher.expect("stream-status", status="offline", streamId=stream_id)

    producer = await relay.producer(token, stream_id)
    online = await watcher.expect("stream-status", status="online")
    assert (await listed_status(relay, token, stream_id))["status"] == "online"

    ml = await relay.consumer(token, stream_id, consumes=["video-frame"], produces=["alert"])
    await producer.send_frame(stream_id)
    streaming = await watcher.expect("stream-status", status="streaming")
    assert (await listed_status(relay, token, stream_id))["status"] == "streaming"
    for _ in range(3):
        await producer.send_frame(stream_id)
    await ml.close()  # an ML service leaving does not change the status

    await producer.close()
    offline = await watcher.expect("stream-status", status="offline")
    listed = await listed_status(relay, token, stream_id)
    assert listed["status"] == "offline"
    assert listed["lastSeen"] == offline["lastSeen"]
    assert online["lastSeen"] <= streaming["lastSeen"] <= offline["lastSeen"]


async def test_cleanup_on_disconnect_leaves_nothing_in_the_hub(relay: RelayHarness) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    hub = relay.relay.hub
    watcher = await relay.consumer(token, stream_id, consumes=["stream-status"])
    producer = await relay.producer(token, stream_id)
    viewer = await relay.consumer(token, stream_id, consumes=["video-frame", "alert"])
    assert hub.get_producer(stream_id) is not None
    assert len(hub.get_consumers(stream_id, "video-frame")) == 1

    await producer.close()
    await watcher.until("stream-status", status="offline")
    assert hub.get_producer(stream_id) is None
    assert len(hub.get_consumers(stream_id, "alert")) == 1, "only the viewer is left"

    disconnected = count_disconnects(relay)
    await viewer.close()
    await watcher.close()
    async with asyncio.timeout(GUARD):
        for _ in range(2):
            await disconnected.get()
    assert not hub.has_consumers(stream_id)
    assert not relay.relay.connections


async def test_a_new_registration_takes_over_the_stream(relay: RelayHarness) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    watcher = await relay.consumer(token, stream_id, consumes=["stream-status"])
    await watcher.expect("stream-status", status="offline")
    old = await relay.producer(token, stream_id)
    await watcher.expect("stream-status", status="online")
    new = await relay.producer(token, stream_id)
    await watcher.expect("stream-status", status="online")
    await old.close()  # the replaced producer leaving does not take the stream offline
    await new.send_frame(stream_id)
    await watcher.expect("stream-status", status="streaming")


async def test_the_heartbeat_drops_a_dead_peer_and_keeps_live_ones(database_url: str) -> None:
    async with running_relay(database_url, ping_interval=0.2) as relay:
        _, token = await relay.user()
        stream_id = await relay.stream(token)
        watcher = await relay.consumer(token, stream_id, consumes=["stream-status"])
        await watcher.expect("stream-status", status="offline")
        producer = await relay.producer(token, stream_id)
        await watcher.expect("stream-status", status="online")

        producer.ws.transport.pause_reading()  # a phone gone silent: it no longer answers pings
        offline = await watcher.expect("stream-status", status="offline")
        assert offline["streamId"] == stream_id
        assert relay.relay.hub.get_producer(stream_id) is None
        producer.ws.transport.abort()

        # The watcher answered every ping all along and is still served.
        await watcher.send({"type": "ping"})
        await watcher.expect("pong")


async def test_restarting_a_relay_sets_streams_left_online_offline(database_url: str) -> None:
    async with running_relay(database_url, ping_interval=0) as relay:
        _, token = await relay.user()
        stream_id = await relay.stream(token)
        await relay.relay.store.streams.set_status(stream_id, "online", utcnow(), "a-node-that-crashed")
    async with running_relay(database_url, ping_interval=0) as relay:
        assert (await listed_status(relay, token, stream_id))["status"] == "offline"


async def test_stopping_the_relay_writes_its_producers_streams_offline(database_url: str) -> None:
    from relay.store import Store
    from relay.tornado.server import RelayServer
    from tests.support import RelayHarness

    server = RelayServer(settings_for_tests(database_url, ping_interval=0))
    await server.start()
    relay = RelayHarness(server)
    _, token = await relay.user()
    streams = [await relay.stream(token, f"cam {index}") for index in range(3)]
    watcher = await relay.consumer(token, streams[0], consumes=["stream-status"])
    await watcher.expect("stream-status", status="offline")
    for stream_id in streams:
        phone = await relay.producer(token, stream_id)
        await phone.send_frame(stream_id)
    await watcher.until("stream-status", status="streaming")
    await server.relay.status.settled()  # nothing left to write: only the shutdown's own changes remain
    await server.stop()
    await relay.close_clients()

    store = await Store.open(database_url)
    try:
        for stream_id in streams:
            stream = await store.streams.get(stream_id)
            assert stream is not None
            assert stream.status == "offline", f"{stream_id} left {stream.status}"
    finally:
        await store.close()


async def test_a_relay_not_yet_started_answers_503_to_rest_and_websocket() -> None:
    """Inside ``panel serve`` the port opens before the relay's database: both APIs say "come back"."""
    relay = Relay(Settings(port=0))
    sockets = bind_sockets(0, "127.0.0.1")
    server = HTTPServer(Application(relay.routes()))
    server.add_sockets(sockets)
    base = f"127.0.0.1:{sockets[0].getsockname()[1]}"
    try:
        response = await AsyncHTTPClient().fetch(f"http://{base}/api/streams/list", raise_error=False)
        assert response.code == 503
        assert orjson.loads(response.body)["error"]["code"] == "unavailable"
        with pytest.raises(InvalidStatus) as refused:
            await connect(f"ws://{base}/api/streams/ws")
        assert refused.value.response.status_code == 503
    finally:
        server.stop()


async def test_stopping_the_relay_stores_the_alerts_it_already_read(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM (RelayServer.stop): an alert being stored, and one read behind it, are both in the database after."""
    from relay.store import Store
    from relay.tornado.server import RelayServer
    from tests.support import RelayHarness

    server = RelayServer(settings_for_tests(database_url, ping_interval=0, max_alerts_per_second=0))
    await server.start()
    relay = RelayHarness(server)
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    phone = await RawWebSocket.open(server.port, token)
    phone.send(client_frame(0x1, orjson.dumps({"type": "register", "streamId": stream_id})))
    assert b"registered" in (await phone.read_frame()).payload
    alerts = server.relay.store.alerts
    real_add = alerts.add
    storing = asyncio.Event()
    release = asyncio.Event()

    async def slow_add(alert: AlertIn, **options: object) -> object:
        storing.set()
        await release.wait()
        return await real_add(alert, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(alerts, "add", slow_add)
    phone.send(  # one write, so the relay reads both at once: the second waits behind the first
        b"".join(
            client_frame(
                0x1, orjson.dumps({"type": "alert", "streamId": stream_id, "severity": "high", "message": r, "ref": r})
            )
            for r in ("first", "second")
        )
    )
    async with asyncio.timeout(GUARD):
        await storing.wait()
    stopping = asyncio.ensure_future(server.stop())
    await asyncio.sleep(0)  # the stop has begun: reading stopped, the relay waits for what it read
    release.set()
    async with asyncio.timeout(GUARD):
        await stopping
    await phone.close()

    store = await Store.open(database_url)
    try:
        stored = await store.alerts.after(stream_id, 0, limit=10)
        assert [row.ref for row in stored] == ["first", "second"]
    finally:
        await store.close()
