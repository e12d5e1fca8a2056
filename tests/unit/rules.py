"""The relay's rules without sockets: a node's router over a real SQLite store, connections that record.

As websockets tests its protocol by feeding it bytes and reading what it wants
to send, these tests hand the session and the router parsed messages and read
what each connection's outbox received, with no socket and no server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson

from relay.broker import MemoryBroker
from relay.config import Settings
from relay.hooks import Hooks
from relay.identity.authenticators import Authenticators
from relay.identity.tokens import TokenVerifier
from relay.routing.connection import Connection
from relay.routing.continuity import AlertContinuity
from relay.routing.hub import Hub
from relay.routing.router import Router
from relay.routing.session import Session
from relay.routing.status import StatusTracker
from relay.store import Store
from relay.wire.envelope import Envelope
from relay.wire.frames import Wire
from relay.wire.video import VideoFrame


class RecordingSink:
    """An outbox that keeps what it is given: control messages as JSON, frames as (frame, binary)."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.frames: list[tuple[VideoFrame, bool]] = []
        self.closed = False
        self.frames_dropped = 0
        self.arrived = asyncio.Event()

    def send(self, wire: Wire) -> None:
        if not self.closed:
            self.messages.append(orjson.loads(_payload(wire)))
            self.arrived.set()

    def send_frame(self, envelope: Envelope, binary: bool) -> None:
        if not self.closed:
            assert envelope.frame is not None
            self.frames.append((envelope.frame, binary))

    def close(self) -> None:
        self.closed = True

    def types(self) -> list[str]:
        return [message["type"] for message in self.messages]

    async def gathered(self, kind: str, count: int) -> list[dict[str, Any]]:
        """The messages of type ``kind`` once there are ``count`` of them (for what tasks send later)."""
        async with asyncio.timeout(10):
            while len(found := [message for message in self.messages if message["type"] == kind]) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return found

    async def until(self, kind: str) -> dict[str, Any]:
        """The first message of type ``kind``, waiting for it if need be (for what a task sends later)."""
        async with asyncio.timeout(10):
            while True:
                for message in self.messages:
                    if message["type"] == kind:
                        return message
                self.arrived.clear()
                await self.arrived.wait()


class RecordingCloser:
    """A session's link to its connection, recording what the session asked of it."""

    def __init__(self) -> None:
        self.closes: list[tuple[int, str]] = []
        self.closed = asyncio.Event()
        self.admissions = 0

    def terminate(self, code: int, reason: str, *, abort: bool = False) -> None:
        self.closes.append((code, reason))
        self.closed.set()

    def admitted(self) -> None:
        self.admissions += 1


class Node:
    """A relay node's rules: store, hub, in-process broker, status writer, router."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.hub = Hub()
        self.broker = MemoryBroker()
        self.status = StatusTracker(store.streams, self.broker, node_id="node", flush_interval=3600)
        self.hooks = Hooks()
        self.continuity = AlertContinuity(self.hub, store.alerts)
        self.router = Router(settings, store, self.hub, self.broker, self.status, self.hooks, self.continuity)
        self.authenticators = Authenticators(TokenVerifier(store.users, ttl=0))

    def connection(self, user_id: str | None = None) -> tuple[Connection, RecordingSink]:
        sink = RecordingSink()
        connection = Connection("node", "peer", sink, max_alerts_per_second=self.settings.max_alerts_per_second)
        connection.user_id = user_id
        return connection, sink

    def session(self) -> tuple[Session, RecordingSink, RecordingCloser]:
        connection, sink = self.connection()
        closer = RecordingCloser()
        return Session(connection, self.router, self.authenticators, closer), sink, closer

    async def user(self, name: str) -> tuple[str, str]:
        issued = await self.store.users.add_or_issue_token(name)
        return issued.user_id, issued.token

    async def stream(self, user_id: str, name: str = "phone") -> str:
        return (await self.store.streams.register(user_id, name, "mobile", {})).id


@asynccontextmanager
async def node_on(database_url: str, **settings: Any) -> AsyncIterator[Node]:
    store = await Store.open(database_url)
    node = Node(store, Settings(database_url=database_url, **{"max_fps": 0, "max_alerts_per_second": 0, **settings}))
    await node.broker.start(node.continuity.deliver)
    node.status.start()
    try:
        yield node
    finally:
        await node.status.close()
        await store.close()


def _payload(wire: Wire) -> bytes:
    """The payload of a server frame, whether its header came in a buffer of its own or joined to it."""
    data = b"".join(wire)
    length = data[1] & 0x7F
    return data[2 if length < 126 else 4 if length == 126 else 10 :]
