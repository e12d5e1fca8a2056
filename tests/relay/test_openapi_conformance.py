"""Schemathesis against the relay's own OpenAPI document: no input answers 500, every answer is documented.

Schemathesis reads ``GET /api/openapi.json`` (the same document the relay
serves), generates requests for every operation (valid ones and broken ones),
sends them to a real relay with a valid token, and checks each answer against
the document: no server error, a documented status, the documented content
type and body schema.  The number of examples is bounded so that a run takes
well under a minute; a failure prints the curl command that reproduces it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from relay.rest.openapi import DOCUMENT
from relay.tornado.server import RelayServer
from tests.support import postgres_schema, service_url, settings_for_tests

schema = schemathesis.openapi.from_dict(DOCUMENT)
CURRENT_TOKEN: dict[str, str] = {}
"""The token of the relay under test (set by the fixture, read by the auth provider)."""


@schema.auth(refresh_interval=None)
class BearerToken:
    """Schemathesis adds the token itself, so that it knows when a case leaves it out on purpose."""

    def get(self, case: schemathesis.Case, context: object) -> str:
        return "the relay's token"  # asked once, even at collection: set() reads the current one

    def set(self, case: schemathesis.Case, data: str, context: object) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {CURRENT_TOKEN.get('token', '')}"}


@dataclass
class LiveRelay:
    base_url: str
    token: str
    new_token: Callable[[], str]
    """A fresh token of the test's user (after a case revoked the current one)."""


def serve_in_a_thread(database_url: str) -> Iterator[LiveRelay]:
    """A relay on its own loop in a thread: schemathesis calls it like any HTTP client would."""
    started = threading.Event()
    loop = asyncio.new_event_loop()
    holder: dict[str, object] = {}

    async def main() -> None:
        server = RelayServer(settings_for_tests(database_url, ping_interval=0))
        await server.start()
        issued = await server.relay.store.users.add_or_issue_token("schemathesis", "s3cret")
        stream = await server.relay.store.streams.register(issued.user_id, "cam", "mobile", {})
        holder.update(server=server, token=issued.token, stream=stream.id)
        started.set()
        await holder.setdefault("stop", asyncio.Event()).wait()  # type: ignore[union-attr]
        await server.stop()

    thread = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    thread.start()
    assert started.wait(30), "the relay did not start"
    server = holder["server"]
    assert isinstance(server, RelayServer)
    CURRENT_TOKEN["token"] = str(holder["token"])

    def new_token() -> str:
        issued = server.relay.store.users.add_or_issue_token("schemathesis")
        return asyncio.run_coroutine_threadsafe(issued, loop).result(30).token

    try:
        yield LiveRelay(f"http://127.0.0.1:{server.port}", str(holder["token"]), new_token)
    finally:
        stop = holder["stop"]
        assert isinstance(stop, asyncio.Event)
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def live_relay(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveRelay]:
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("conformance") / "relay.db"
        yield from serve_in_a_thread(f"sqlite+aiosqlite:///{path}")
        return
    base = service_url("RELAY_TEST_POSTGRES_URL", "PostgreSQL")
    loop = asyncio.new_event_loop()  # one loop for the schema's life: asyncio.run would close it at once
    schema_of_this_run = postgres_schema(base)
    try:
        url = loop.run_until_complete(schema_of_this_run.__aenter__())
        yield from serve_in_a_thread(url)
    finally:
        loop.run_until_complete(schema_of_this_run.__aexit__(None, None, None))
        loop.close()


@schema.parametrize()
@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_every_answer_matches_the_document(case: schemathesis.Case, live_relay: LiveRelay) -> None:
    # Two answers no schema can predict, checked as documented errors instead of "accepted": a plain GET
    # of the WebSocket endpoint (no upgrade: 426), and a cursor of the right form that this API never gave (400).
    excluded = [positive_data_acceptance] if case.path in ("/api/streams/ws", "/api/alerts") else []
    try:
        case.call_and_validate(base_url=live_relay.base_url, excluded_checks=excluded)
    finally:
        if case.method.upper() == "DELETE" and case.path == "/api/auth/token":  # it may have revoked the token
            CURRENT_TOKEN["token"] = live_relay.new_token()
