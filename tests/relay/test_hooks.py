"""The ``alert_stored`` hook: every stored alert once, after it is sent on, whatever the callbacks do."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.support import GUARD, RelayHarness


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """WebSocket behaviour does not depend on the database: SQLite only."""
    return sqlite_url


async def test_hooks_hear_of_each_stored_alert_once_and_cannot_break_the_relay(relay: RelayHarness) -> None:
    plain: list[dict[str, Any]] = []
    heard: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def failing(_alert: dict[str, Any]) -> None:
        raise RuntimeError("a hook that fails")

    async def failing_later(_alert: dict[str, Any]) -> None:
        raise RuntimeError("a coroutine hook that fails")

    async def webhook(alert: dict[str, Any]) -> None:
        await heard.put(alert)

    for callback in (failing, plain.append, failing_later, webhook):
        relay.relay.hooks.on_alert_stored(callback)  # type: ignore[arg-type]

    _, token = await relay.user()
    stream_id = await relay.stream(token)
    ml = await relay.producer(token, stream_id)
    alert = {"type": "alert", "streamId": stream_id, "severity": "high", "message": "person", "ref": "r1"}
    await ml.send(alert)
    stored = await ml.expect("alert-stored", ref="r1")
    await ml.send(alert)  # a resend: confirmed again, not stored again
    await ml.expect("alert-stored", ref="r1", id=stored["id"])

    async with asyncio.timeout(GUARD):
        told = await heard.get()
    assert told["id"] == stored["id"]
    assert told["streamId"] == stream_id
    assert "type" not in told, "the alert as the REST API shows it"
    assert [entry["id"] for entry in plain] == [stored["id"]]
    assert heard.empty()
