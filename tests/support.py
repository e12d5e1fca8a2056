"""Helpers for tests that talk to a real relay over real sockets.

:class:`RelayHarness` starts a relay on an ephemeral port with a real database
and offers REST calls and WebSocket clients (the ``websockets`` library) that
speak to it.  Waiting is always for an event (a message, a status) under a
generous guard timeout, never for a fixed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from websockets.asyncio.client import ClientConnection, connect

from relay.config import Settings
from relay.tornado.server import RelayServer
from relay.wire import decode_binary_frame, encode_binary_frame

GUARD = 10.0
"""Seconds after which a test waiting for an event gives up (a hang, not a timing check)."""

REQUIRE_SERVICES = os.environ.get("VIGIL_REQUIRE_SERVICES") == "1"


def make_jpeg(shade: int = 128, size: tuple[int, int] = (8, 8)) -> bytes:
    """A real JPEG of one grey shade, encoded by OpenCV (imported here: few tests need it)."""
    import cv2
    import numpy as np

    image = np.full((size[1], size[0], 3), shade, np.uint8)
    ok, encoded = cv2.imencode(".jpg", image)
    assert ok
    return bytes(encoded.tobytes())


JPEG = bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000ffdb004300020101010101020101010202020202040302020202050404030406"
    "0506060605060606070908060709070606080b08090a0a0a0a0a06080b0c0b0a0c090a0a0affdb00430102020202020205030305"
    "0a0706070a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a"
    "0a0affc00011080008000803012200021101031101ffc4001f000001050101010101010000000000000000010203040506070809"
    "0a0bffc400b5100002010303020403050504040000017d01020300041105122131410613516107227114328191a1082342b1c115"
    "52d1f02433627282090a161718191a25262728292a3435363738393a434445464748494a535455565758595a636465666768696a"
    "737475767778797a838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9ca"
    "d2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9faffc4001f01000301010101010101010100000000000001"
    "02030405060708090a0bffc400b51100020102040403040705040400010277000102031104052131061241510761711322328108"
    "144291a1b1c109233352f0156272d10a162434e125f11718191a262728292a35363738393a434445464748494a53545556575859"
    "5a636465666768696a737475767778797a82838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9"
    "bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae2e3e4e5e6e7e8e9eaf2f3f4f5f6f7f8f9faffda000c03010002110311003f0028"
    "a28a00ffd9"
)
"""A real 8×8 grey JPEG (what :func:`make_jpeg` makes by default), as bytes so that no test pays for OpenCV."""


def service_url(variable: str, what: str) -> str:
    """The URL of an outside service a test needs, or skip (fail in CI) without it."""
    url = os.environ.get(variable)
    if not url:
        message = f"{what} not configured: set {variable} to run these tests"
        if REQUIRE_SERVICES:
            pytest.fail(message + " (VIGIL_REQUIRE_SERVICES=1 forbids skipping)")
        pytest.skip(message)
    return url


async def install_pg_trgm(connection: Any) -> None:
    """``pg_trgm`` in the ``public`` schema, where every test schema's migration finds it.

    Otherwise the first migration would create it in its own schema, and dropping
    that schema would drop the extension with every other schema's text index.
    """
    import psycopg

    with contextlib.suppress(psycopg.errors.UniqueViolation, psycopg.errors.DuplicateObject):
        await connection.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")


@asynccontextmanager
async def postgres_schema(base_url: str) -> AsyncIterator[str]:
    """A fresh PostgreSQL schema for one test; yields a URL whose search_path is that schema."""
    import psycopg

    schema = "t_" + uuid.uuid4().hex[:12]
    plain = base_url.replace("postgresql+psycopg://", "postgresql://")
    async with await psycopg.AsyncConnection.connect(plain, autocommit=True) as connection:
        await install_pg_trgm(connection)
        await connection.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in base_url else "?"
    try:
        yield f"{base_url}{separator}options=-csearch_path%3D{schema}"
    finally:
        async with await psycopg.AsyncConnection.connect(plain, autocommit=True) as connection:
            await connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str]

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)


class Client:
    """A WebSocket client of the relay with helpers to wait for messages."""

    def __init__(self, connection: ClientConnection) -> None:
        self.ws = connection

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(orjson.dumps(message).decode())

    async def send_frame(self, stream_id: str, image: bytes = JPEG, *, timestamp: int | None = None) -> None:
        await self.ws.send(encode_binary_frame(stream_id, image, timestamp=timestamp))

    async def recv(self) -> dict[str, Any] | tuple[dict[str, Any], bytes]:
        """The next message: a dict for text, (header, image bytes) for a binary frame."""
        async with asyncio.timeout(GUARD):
            raw = await self.ws.recv()
        if isinstance(raw, bytes):
            header, image = decode_binary_frame(raw)
            return header, bytes(image)
        message: dict[str, Any] = orjson.loads(raw)
        return message

    async def expect(self, type: str, **fields: Any) -> dict[str, Any]:
        """The next text message, which must be of ``type`` (and have ``fields``)."""
        message = await self.recv()
        assert isinstance(message, dict), f"expected {type}, got a binary frame"
        assert message.get("type") == type, f"expected {type}, got {message}"
        for key, value in fields.items():
            assert message.get(key) == value, f"{key}: expected {value!r} in {message}"
        return message

    async def until(self, type: str, **fields: Any) -> dict[str, Any]:
        """Skip messages until one of ``type`` (with ``fields``) arrives."""
        while True:
            message = await self.recv()
            if (
                isinstance(message, dict)
                and message.get("type") == type
                and all(message.get(k) == v for k, v in fields.items())
            ):
                return message

    async def closed(self) -> tuple[int | None, str | None]:
        """Wait for the relay to close the connection; its code and reason."""
        async with asyncio.timeout(GUARD):
            await self.ws.wait_closed()
        return self.ws.close_code, self.ws.close_reason

    async def close(self) -> None:
        await self.ws.close()


class RelayHarness:
    """A running relay for one test; see the module docstring."""

    def __init__(self, server: RelayServer) -> None:
        self.server = server
        self.relay = server.relay
        self.port = server.port
        self.base = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/api/streams/ws"
        self._clients: list[Client] = []

    async def user(self, name: str | None = None, password: str | None = None) -> tuple[str, str]:
        """A new user; returns (user id, token)."""
        issued = await self.relay.store.users.add_or_issue_token(name or f"u{uuid.uuid4().hex[:8]}", password)
        return issued.user_id, issued.token

    async def api(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        body: Any = None,
        raw_body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        data = raw_body if raw_body is not None else (orjson.dumps(body) if body is not None else None)
        if data is None and method in ("POST", "PUT"):
            data = b""
        request = HTTPRequest(self.base + path, method=method, headers=all_headers, body=data, request_timeout=GUARD)
        response = await AsyncHTTPClient().fetch(request, raise_error=False)
        return Response(response.code, response.body or b"", dict(response.headers))

    async def stream(self, token: str, name: str = "phone") -> str:
        response = await self.api(
            "POST", "/api/streams/register", token=token, body={"deviceName": name, "deviceType": "mobile"}
        )
        assert response.status == 201, response.body
        stream_id: str = response.json["streamId"]
        return stream_id

    async def connect(
        self,
        token: str | None = None,
        *,
        how: str = "header",
        expect_ok: bool = True,
        path: str = "/api/streams/ws",
        **kwargs: Any,
    ) -> Client:
        """A WebSocket client; ``how`` the token travels: header, query, or none (by message later)."""
        url, headers = f"ws://127.0.0.1:{self.port}{path}", {}
        if token is not None and how == "header":
            headers["Authorization"] = f"Bearer {token}"
        elif token is not None and how == "query":
            url += f"?token={token}"
        connection = await connect(url, additional_headers=headers, max_size=None, **kwargs)
        client = Client(connection)
        self._clients.append(client)
        if expect_ok and token is not None and how in ("header", "query"):
            await client.expect("auth-ok")
        return client

    async def producer(self, token: str, stream_id: str, **fields: Any) -> Client:
        client = await self.connect(token)
        await client.send({"type": "register", "streamId": stream_id, "clientType": "mobile", **fields})
        await client.until("registered", streamId=stream_id)
        return client

    async def consumer(self, token: str, stream_id: str, **fields: Any) -> Client:
        client = await self.connect(token)
        await client.send({"type": "subscribe", "streamId": stream_id, "clientType": "dashboard", **fields})
        await client.expect("subscribed", streamId=stream_id)
        return client

    async def close_clients(self) -> None:
        for client in self._clients:
            await client.close()


RelayFactory = Callable[..., Any]


@asynccontextmanager
async def running_relay(database_url: str, **overrides: Any) -> AsyncIterator[RelayHarness]:
    server = RelayServer(settings_for_tests(database_url, **overrides))
    await server.start()
    harness = RelayHarness(server)
    try:
        yield harness
    finally:
        await harness.close_clients()
        await server.stop()


_ANALYTICS = tempfile.TemporaryDirectory(prefix="vigil-test-analytics-")
"""Where test relays keep their analytics copies (removed when the test process ends)."""


def settings_for_tests(database_url: str, **overrides: Any) -> Settings:
    """A relay's settings on an ephemeral port of 127.0.0.1; its analytics copy in a folder of its own
    (never the working folder), refreshed only when a test asks."""
    overrides.setdefault("analytics_refresh", 0)
    overrides.setdefault("analytics_dir", tempfile.mkdtemp(dir=_ANALYTICS.name))
    overrides.setdefault("host", "127.0.0.1")
    overrides.setdefault("port", 0)
    return Settings(database_url=database_url, **overrides)


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[tuple[str, Any]]]:
    """The SQL statements (and parameters) ``engine`` sends meanwhile."""
    sent: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        sent.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
