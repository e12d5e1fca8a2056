"""The Python client survives the network: lost connections, a relay restart, a lost confirmation.

Each test checks the promise of issue 3: after the trouble the client is
registered and subscribed again, and every alert raised meanwhile reaches every
consumer exactly once, in order, and is stored exactly once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace

import pytest
from sqlalchemy import text

from relay.client import Alert, AlertQueueFull, AuthenticationError, Backoff, ErrorReport, Frame, RelayClient
from relay.routing.connection import Connection
from relay.store import Store
from relay.tornado.server import RelayServer
from relay.wire import AlertIn
from tests.support import GUARD, RelayHarness, make_jpeg, settings_for_tests
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.timeout(60)  # a guard against hangs; every wait here is for an event


def client(url: str, token: str) -> RelayClient:
    return RelayClient(url, token, backoff=Backoff(base=0.02, cap=0.2), alert_resend_interval=0.5)


async def alerts(receiver: RelayClient, count: int) -> list[Alert]:
    """The next ``count`` alerts ``receiver`` gets (other messages skipped)."""
    received: list[Alert] = []
    async with asyncio.timeout(GUARD):
        while len(received) < count:
            message = await receiver.receive()
            if isinstance(message, Alert):
                received.append(message)
    return received


async def next_frame(receiver: RelayClient) -> Frame:
    async with asyncio.timeout(GUARD):
        while True:
            message = await receiver.receive()
            if isinstance(message, Frame):
                return message


async def raise_alerts(ml: RelayClient, stream_id: str, names: list[str]) -> list[str]:
    """Send one alert per name (``ref`` = name) and wait until each is stored; their ids."""
    refs = [await ml.send_alert("high", name, stream_id=stream_id, ref=name) for name in names]
    async with asyncio.timeout(GUARD):
        return [await ml.alert_stored(ref) for ref in refs]


async def test_after_the_network_comes_back_nothing_is_lost_or_doubled(relay: RelayHarness) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    async with AsyncExitStack() as stack:
        phone_net, dashboard_net = TcpProxy(relay.port), TcpProxy(relay.port)
        for network in (phone_net, dashboard_net):
            await network.start()
            stack.push_async_callback(network.close)
        phone, dashboard, ml = client(phone_net.url, token), client(dashboard_net.url, token), client(relay.base, token)
        for each in (phone, dashboard, ml):
            stack.push_async_callback(each.close)
        await phone.register(stream_id)
        await dashboard.subscribe(stream_id, consumes=["alert"])
        await ml.subscribe(stream_id, consumes=["video-frame"], produces=["alert"], client_type="ml-service")
        before = await raise_alerts(ml, stream_id, ["a0"])
        assert [a.id for a in await alerts(phone, 1)] == before
        assert [a.id for a in await alerts(dashboard, 1)] == before

        phone_net.cut()
        dashboard_net.cut()
        await phone_net.attempt_while_cut()  # the phone noticed, and cannot get through
        await dashboard_net.attempt_while_cut()
        assert not await phone.send_frame(make_jpeg()), "no frame is queued while offline"
        assert phone.stats.frames_dropped_offline == 1
        while_away = await raise_alerts(ml, stream_id, ["a1", "a2", "a3"])

        phone_net.restore()
        dashboard_net.restore()
        after = await raise_alerts(ml, stream_id, ["a4"])
        for receiver in (phone, dashboard):
            assert [a.id for a in await alerts(receiver, 4)] == while_away + after, "replayed, then live, once each"
            assert receiver.stats.connections == 2

        assert await phone.send_frame(make_jpeg(), timestamp=42), "registered again: frames flow"
        assert (await next_frame(ml)).timestamp == 42
        last = await raise_alerts(ml, stream_id, ["a5"])
        assert [a.id for a in await alerts(dashboard, 1)] == last, "no duplicate came before the next alert"


async def test_a_consumer_that_had_seen_no_alert_yet_misses_none(relay: RelayHarness) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    network = TcpProxy(relay.port)
    await network.start()
    dashboard, ml = client(network.url, token), client(relay.base, token)
    try:
        await dashboard.subscribe(stream_id, consumes=["alert"])
        await ml.subscribe(stream_id, consumes=[], produces=["alert"])
        network.cut()
        await network.attempt_while_cut()
        while_away = await raise_alerts(ml, stream_id, ["b0", "b1"])  # the first alerts the stream ever had
        network.restore()
        assert [a.id for a in await alerts(dashboard, 2)] == while_away
        live = await raise_alerts(ml, stream_id, ["b2"])
        assert [a.id for a in await alerts(dashboard, 1)] == live
    finally:
        for each in (dashboard, ml):
            await each.close()
        await network.close()


@asynccontextmanager
async def restartable_relay(database_url: str) -> AsyncIterator[list[RelayServer]]:
    """A relay on a fixed port that a test can stop and start again on the same database."""
    settings = settings_for_tests(database_url, ping_interval=0, max_fps=0, max_alerts_per_second=0)
    servers = [RelayServer(settings)]
    await servers[0].start()
    try:
        yield servers
    finally:
        for server in servers:
            await server.stop()


async def test_a_relay_restart_loses_no_alert_and_stores_none_twice(database_url: str) -> None:
    async with restartable_relay(database_url) as servers, AsyncExitStack() as stack:
        first = servers[0]
        port = first.port
        url = f"http://127.0.0.1:{port}"
        issued = await first.relay.store.users.add_or_issue_token("carol", None)
        token = issued.token
        phone, dashboard, ml = client(url, token), client(url, token), client(url, token)
        for each in (phone, dashboard, ml):
            stack.push_async_callback(each.close)
        stream_id = await phone.register_stream("Door phone")
        await phone.register(stream_id)
        await dashboard.subscribe(stream_id, consumes=["alert", "stream-status"])
        await ml.subscribe(stream_id, consumes=["video-frame"], produces=["alert"])
        before = await raise_alerts(ml, stream_id, ["r0"])
        for receiver in (phone, dashboard):
            assert [a.id for a in await alerts(receiver, 1)] == before

        await first.stop()
        refs = [await ml.send_alert("critical", f"while down {i}", stream_id=stream_id, ref=f"r{i}") for i in (1, 2)]
        assert ml.pending_alerts == 2, "queued while the relay is down"

        second = RelayServer(replace(first.settings, port=port))
        servers.append(second)
        await second.start()
        async with asyncio.timeout(GUARD):
            stored = [await ml.alert_stored(ref) for ref in refs]
        stored += await raise_alerts(ml, stream_id, ["r3"])
        for receiver in (phone, dashboard):
            assert [a.id for a in await alerts(receiver, 3)] == stored
        assert await phone.send_frame(make_jpeg(), timestamp=7)
        assert (await next_frame(ml)).timestamp == 7

        history = [alert async for alert in dashboard.alerts(stream_ids=[stream_id])]
        assert [a.ref for a in history] == ["r3", "r2", "r1", "r0"], "each alert stored exactly once"


async def test_an_alert_whose_confirmation_was_lost_is_resent_and_stored_once(
    relay: RelayHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    router = relay.relay.router
    store_alert = router.alert
    cut: list[str] = []

    async def store_then_lose_the_connection(connection: Connection, alert: AlertIn) -> None:
        if cut:
            await store_alert(connection, alert)
            return
        cut.append(alert.ref or "")
        connection.outbox.close()  # alert-stored will not reach the sender...
        await store_alert(connection, alert)  # ...although the alert is stored and sent on
        for websocket in relay.relay.connections:
            if websocket.connection is connection:
                websocket.terminate(1001, "network lost", abort=True)

    monkeypatch.setattr(router, "alert", store_then_lose_the_connection)
    dashboard, ml = client(relay.base, token), client(relay.base, token)
    try:
        await dashboard.subscribe(stream_id, consumes=["alert"])
        await ml.subscribe(stream_id, consumes=[], produces=["alert"])
        ref = await ml.send_alert("high", "once only", stream_id=stream_id)
        async with asyncio.timeout(GUARD):
            alert_id = await ml.alert_stored(ref)
        assert cut == [ref]
        assert ml.stats.connections == 2
        assert [a.id for a in await alerts(dashboard, 1)] == [alert_id]
        later = await raise_alerts(ml, stream_id, ["next"])
        assert [a.id for a in await alerts(dashboard, 1)] == later, "the resend was not delivered again"
        listed = (await relay.api("GET", f"/api/alerts?streamId={stream_id}", token=token)).json["alerts"]
        assert [a["ref"] for a in listed] == ["next", ref]
    finally:
        await dashboard.close()
        await ml.close()


async def test_a_token_refused_on_reconnect_stops_the_client(relay: RelayHarness) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    network = TcpProxy(relay.port)
    await network.start()
    phone = client(network.url, token)
    try:
        await phone.register(stream_id)
        network.cut()
        await network.attempt_while_cut()
        phone.token = "vr_revoked"  # as a token revoked while the phone was away
        network.restore()

        async def read_everything() -> None:
            async with asyncio.timeout(GUARD):
                async for _message in phone:
                    pass

        with pytest.raises(AuthenticationError):
            await read_everything()
        with pytest.raises(AuthenticationError):
            await phone.send_alert("low", "too late")
    finally:
        await phone.close()
        await network.close()


async def test_alerts_queued_while_offline_are_bounded_and_overflow_raises(relay: RelayHarness) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    network = TcpProxy(relay.port)
    await network.start()
    phone = RelayClient(network.url, token, backoff=Backoff(base=0.02, cap=0.2), max_pending_alerts=2)
    try:
        await phone.register(stream_id, consumes=[])
        network.cut()
        await network.attempt_while_cut()
        queued = [await phone.send_alert("high", f"offline {i}") for i in range(2)]
        with pytest.raises(AlertQueueFull):
            await phone.send_alert("high", "one too many")
        assert phone.pending_alerts == 2
        network.restore()
        async with asyncio.timeout(GUARD):
            await phone.flush_alerts()
        listed = (await relay.api("GET", f"/api/alerts?streamId={stream_id}", token=token)).json["alerts"]
        assert sorted(a["ref"] for a in listed) == sorted(queued), "the queued ones stored, the refused one not"
    finally:
        await phone.close()
        await network.close()


async def test_a_resume_point_the_relay_no_longer_knows_is_reported_and_alerts_go_on(database_url: str) -> None:
    async with restartable_relay(database_url) as servers, AsyncExitStack() as stack:
        first = servers[0]
        url = f"http://127.0.0.1:{first.port}"
        token = (await first.relay.store.users.add_or_issue_token("dave", None)).token
        dashboard, ml = client(url, token), client(url, token)
        for each in (dashboard, ml):
            stack.push_async_callback(each.close)
        stream_id = await ml.register_stream("Gate")
        await dashboard.subscribe(stream_id, consumes=["alert"])
        await ml.subscribe(stream_id, consumes=[], produces=["alert"])
        before = await raise_alerts(ml, stream_id, ["c0"])
        assert [a.id for a in await alerts(dashboard, 1)] == before

        await first.stop()
        store = await Store.open(database_url)  # while it is down, its alerts are purged (a restored backup)
        async with store.engine.begin() as connection:
            await connection.execute(text("DELETE FROM alert"))
        await store.close()
        second = RelayServer(replace(first.settings, port=first.port))
        servers.append(second)
        await second.start()

        async with asyncio.timeout(GUARD):
            report = await anext(m async for m in dashboard if isinstance(m, ErrorReport))
        assert (report.code, report.stream_id) == ("invalid-message", stream_id)
        assert f"cannot resume alerts after {before[0]}" in report.message
        await asyncio.wait_for(dashboard.connect(), GUARD)  # subscribed again, from the newest alert
        after = await raise_alerts(ml, stream_id, ["c1"])
        assert [a.id for a in await alerts(dashboard, 1)] == after
