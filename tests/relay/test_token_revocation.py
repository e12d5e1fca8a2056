"""Revoking tokens: over REST on any node, by the CLI's way (the database alone), and by logging in again."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import pytest

from relay.identity.credentials import token_hash
from tests.support import RelayHarness, running_relay, service_url


async def test_a_revoked_token_stops_working_at_once_and_closes_its_sessions(relay: RelayHarness) -> None:
    user_id, token = await relay.user()
    _, other = await relay.user(await _name_of(relay, user_id))  # a second token of the same user
    stream_id = await relay.stream(token)
    revoked_session = await relay.producer(token, stream_id)
    kept_session = await relay.consumer(other, stream_id, consumes=["stream-status"])
    assert (await relay.api("GET", "/api/streams/list", token=token)).status == 200  # cached now

    assert (await relay.api("DELETE", "/api/auth/token")).status == 401
    answer = await relay.api("DELETE", "/api/auth/token", token=token)
    assert answer.status == 204
    assert answer.body == b""
    assert await revoked_session.closed() == (1008, "token revoked")
    assert (await relay.api("GET", "/api/streams/list", token=token)).status == 401
    assert (await relay.api("DELETE", "/api/auth/token", token=token)).status == 401
    late = await relay.connect(token, expect_ok=False)
    assert await late.closed() == (1008, "Unauthorized")

    assert (await relay.api("GET", "/api/streams/list", token=other)).status == 200, "the user's other token works"
    await kept_session.until("stream-status", status="offline")  # the revoked producer's session is gone
    await kept_session.send({"type": "ping"})
    await kept_session.expect("pong")


async def test_a_token_deleted_in_the_database_alone_is_noticed_within_a_second(relay: RelayHarness) -> None:
    """What ``relay tokens revoke`` does: no announcement reaches the relay, its token watch finds out."""
    _, token = await relay.user()
    session = await relay.connect(token)
    assert (await relay.api("GET", "/api/streams/list", token=token)).status == 200
    started = time.monotonic()
    assert await relay.relay.store.users.revoke([token_hash(token)]) == [token_hash(token)]
    assert await session.closed() == (1008, "token revoked")
    assert time.monotonic() - started < 3.0, "the watch checks every second (with room for a busy machine)"
    assert (await relay.api("GET", "/api/streams/list", token=token)).status == 401


async def test_logging_in_again_can_replace_the_old_token(relay: RelayHarness) -> None:
    name = f"ana{uuid.uuid4().hex[:6]}"
    _, first = await relay.user(name, "pw")
    _, stranger = await relay.user()
    login = {"username": name, "password": "pw"}
    second = (await relay.api("POST", "/api/auth/token", body={**login, "replaces": first})).json["token"]
    assert (await relay.api("GET", "/api/streams/list", token=first)).status == 401
    assert (await relay.api("GET", "/api/streams/list", token=second)).status == 200
    third = await relay.api("POST", "/api/auth/token", body={**login, "replaces": stranger})
    assert third.status == 200
    assert (await relay.api("GET", "/api/streams/list", token=stranger)).status == 200, "only one's own token"
    again = await relay.api("POST", "/api/auth/token", body={**login, "replaces": first})  # revoked already
    assert again.status == 200
    tokens = await relay.relay.store.users.tokens_of(third.json["userId"])
    assert len(tokens) == 3  # second, third, again: none piled up from the replaced one
    for replaces in (5, "", "x" * 201):
        assert (await relay.api("POST", "/api/auth/token", body={**login, "replaces": replaces})).status == 400


async def _name_of(relay: RelayHarness, user_id: str) -> str:
    user = await relay.relay.store.users.by_id(user_id)
    assert user is not None
    return user.username


@pytest.fixture
async def two_nodes(database_url: str) -> AsyncIterator[tuple[RelayHarness, RelayHarness]]:
    options = {
        "ping_interval": 0,
        "broker_url": service_url("RELAY_TEST_REDIS_URL", "Redis"),
        "token_check_interval": 0,  # only the announcement can tell the other node
    }
    async with running_relay(database_url, **options) as first, running_relay(database_url, **options) as second:
        yield first, second


@pytest.mark.redis
async def test_a_token_revoked_on_one_node_stops_working_on_the_other(
    two_nodes: tuple[RelayHarness, RelayHarness],
) -> None:
    first, second = two_nodes
    _, token = await first.user()
    session = await second.connect(token)
    assert (await second.api("GET", "/api/streams/list", token=token)).status == 200  # trusted from memory there
    assert (await first.api("DELETE", "/api/auth/token", token=token)).status == 204
    assert await session.closed() == (1008, "token revoked")
    assert (await second.api("GET", "/api/streams/list", token=token)).status == 401
    assert (await first.api("GET", "/api/streams/list", token=token)).status == 401
