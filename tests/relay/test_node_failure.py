"""Several nodes tell the truth about streams when one of them dies without a goodbye.

Two ``relay serve`` processes share a PostgreSQL schema and a Redis of this
test's own.  A phone streams through one of them; that process is killed with
SIGKILL; the other takes the stream offline (written, and announced to its own
consumers) within the bound that ``RELAY_NODE_TTL`` sets.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect

from relay.store import Store
from tests.programs import relay_serve
from tests.services import private_redis
from tests.support import RelayHarness, postgres_schema, running_relay, service_url

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

NODE_TTL = 3.0
"""Short, so that the test is quick: the stream goes offline within about 5/3 of it."""


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    async with postgres_schema(service_url("RELAY_TEST_POSTGRES_URL", "PostgreSQL")) as url:
        yield url


async def client(port: int, token: str, first: dict[str, object], answer: str) -> ClientConnection:
    ws = await connect(f"ws://127.0.0.1:{port}/api/streams/ws", additional_headers={"Authorization": f"Bearer {token}"})
    await ws.send(orjson.dumps(first).decode())
    async with asyncio.timeout(10):
        while orjson.loads(await ws.recv()).get("type") != answer:
            pass
    return ws


async def status(ws: ClientConnection, wanted: str, within: float) -> float:
    """Seconds until ``ws`` hears the stream is ``wanted``."""
    started = time.monotonic()
    async with asyncio.timeout(within):
        while True:
            message = orjson.loads(await ws.recv())
            if message.get("type") == "stream-status" and message.get("status") == wanted:
                return time.monotonic() - started


async def test_a_killed_nodes_streams_go_offline_on_every_node(postgres_url: str) -> None:
    store = await Store.open(postgres_url)
    issued = await store.users.add_or_issue_token("ops")
    stream = await store.streams.register(issued.user_id, "cam", "mobile", {})
    async with private_redis() as redis:
        environment = {"RELAY_NODE_TTL": str(NODE_TTL)}
        flags = ("--broker-url", redis.url, "--ping-interval", "0")
        async with (
            relay_serve(postgres_url, *flags, environment=environment) as (doomed, doomed_port),
            relay_serve(postgres_url, *flags, environment=environment) as (_, survivor_port),
        ):
            dashboard = await client(
                survivor_port,
                issued.token,
                {"type": "subscribe", "streamId": stream.id, "consumes": ["stream-status"]},
                "subscribed",
            )
            phone = await client(doomed_port, issued.token, {"type": "register", "streamId": stream.id}, "registered")
            await status(dashboard, "online", 10)

            doomed.send_signal(signal.SIGKILL)
            await doomed.wait()
            delay = await status(dashboard, "offline", NODE_TTL * 5 / 3 + 5)
            assert delay < NODE_TTL * 5 / 3 + 2, f"offline {delay:.1f} s after the kill"
            with contextlib.suppress(Exception):
                await phone.close()
            await dashboard.close()
    row = await store.streams.get(stream.id)
    await store.close()
    assert row is not None
    assert (row.status, row.producer_node) == ("offline", None)


async def test_an_old_connection_going_does_not_take_a_reregistered_stream_offline(database_url: str) -> None:
    """A phone that registered again on another node keeps its stream when its old connection finally goes."""
    base = service_url("RELAY_TEST_REDIS_URL", "Redis")
    options = {"ping_interval": 0, "broker_url": base}
    async with running_relay(database_url, **options) as first, running_relay(database_url, **options) as second:
        await moved_phone(first, second)


async def moved_phone(first: RelayHarness, second: RelayHarness) -> None:
    _, token = await first.user()
    stream_id = await first.stream(token)
    watcher = await second.consumer(token, stream_id, consumes=["stream-status"])
    await watcher.expect("stream-status", status="offline")
    old = await first.producer(token, stream_id)
    await watcher.until("stream-status", status="online")
    await second.producer(token, stream_id)  # the phone moved: its new connection, on another node
    await watcher.until("stream-status", status="online")
    await old.close()
    await first.relay.status.settled()
    listed = await second.api("GET", "/api/streams/list", token=token)
    assert listed.json["streams"][0]["status"] == "online", "the old connection did not take it offline"
    await watcher.send({"type": "ping"})
    heard = []
    while (message := await watcher.recv()) != {"type": "pong"}:
        heard.append(message)
    assert not [m for m in heard if isinstance(m, dict) and m.get("status") == "offline"], "nor was it announced"
