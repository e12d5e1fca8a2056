"""The database briefly gone: frames flow on, alerts are refused as ``unavailable``, REST says 503, all recovers.

The relay reaches PostgreSQL through a proxy this test can unplug, so only this
relay's connections are cut, never the shared server's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.support import RelayHarness, postgres_schema, running_relay, service_url
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.postgres


@pytest.fixture
async def proxy_to_postgres() -> AsyncIterator[tuple[TcpProxy, str]]:
    """A fresh PostgreSQL schema, reached through a proxy (an outage of a database file is no network outage)."""
    async with postgres_schema(service_url("RELAY_TEST_POSTGRES_URL", "PostgreSQL")) as database_url:
        parts = urlsplit(database_url)
        proxy = TcpProxy(parts.port or 5432)
        await proxy.start()
        try:
            yield proxy, urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
        finally:
            await proxy.close()


async def test_losing_the_database_loses_nothing_confirmed(proxy_to_postgres: tuple[TcpProxy, str]) -> None:
    proxy, url = proxy_to_postgres
    async with running_relay(url, ping_interval=0, max_fps=0, max_alerts_per_second=0) as relay:
        await outage(relay, proxy)


async def outage(relay: RelayHarness, proxy: TcpProxy) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    phone = await relay.producer(token, stream_id)
    ml = await relay.consumer(token, stream_id, consumes=["video-frame"], produces=["alert"], frameFormat="binary")
    dashboard = await relay.consumer(token, stream_id, consumes=["alert"])

    proxy.cut()
    await phone.send_frame(stream_id, timestamp=7)
    header, _ = await ml.recv()  # type: ignore[misc]
    assert header["timestamp"] == 7, "frames go on without the database"

    alert = {"type": "alert", "streamId": stream_id, "severity": "high", "message": "person", "ref": "during"}
    await ml.send(alert)
    refusal = await ml.until("error")
    assert (refusal["code"], refusal["ref"], refusal["streamId"]) == ("unavailable", "during", stream_id)
    for path in ("/api/alerts", "/api/streams/list", "/api/health"):
        answer = await relay.api("GET", path, token=token)
        assert answer.status == 503, (path, answer.status, answer.body[:200])
        assert answer.json["error"]["code"] == "unavailable"
    await phone.close()  # the stream goes offline while nothing can be written: the change waits, in order

    proxy.restore()
    await relay.relay.status.settled()
    listed = await relay.api("GET", "/api/streams/list", token=token)
    assert listed.json["streams"][0]["status"] == "offline"
    await ml.send(alert)  # what the client library does with 'unavailable': send it again later
    stored = await ml.until("alert-stored", ref="during")
    live = await dashboard.until("alert")
    assert live["id"] == stored["id"]
    page = await relay.api("GET", "/api/alerts", token=token)
    assert page.status == 200
    assert [entry["id"] for entry in page.json["alerts"]] == [stored["id"]]
    await ml.send({"type": "ping"})
    await ml.until("pong")
