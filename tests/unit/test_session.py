"""The session's authentication sub-protocol and its answers, without a socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest

from relay.identity.authenticators import Identified
from relay.wire import NotUtf8, encode_binary_frame
from tests.support import JPEG
from tests.unit.rules import Node, node_on


@pytest.fixture
async def node(sqlite_url: str) -> AsyncIterator[Node]:
    async with node_on(sqlite_url) as node:
        yield node


def text(message: dict[str, object]) -> bytes:
    return orjson.dumps(message)


async def handled(waiting: object) -> None:
    if waiting is not None:
        await waiting  # type: ignore[misc]


async def test_before_authentication_only_ping_is_answered(node: Node) -> None:
    session, sink, closer = node.session()
    session.begin(None, auth_timeout=0)
    assert session.on_text(text({"type": "ping"})) is None
    await handled(session.on_text(text({"type": "subscribe", "streamId": "stream_x"})))
    await handled(session.on_binary(encode_binary_frame("stream_x", JPEG)))
    assert sink.types() == ["pong", "error", "error"]
    assert {message.get("code") for message in sink.messages[1:]} == {"unauthorized"}
    assert closer.closes == []


async def test_a_token_in_the_first_register_authenticates_once(node: Node) -> None:
    user_id, token = await node.user("ana")
    stream_id = await node.stream(user_id)
    session, sink, _ = node.session()
    session.begin(None, auth_timeout=0)
    await handled(session.on_text(text({"type": "register", "streamId": stream_id, "token": token})))
    await handled(session.on_text(text({"type": "auth", "token": token})))
    assert sink.types() == ["auth-ok", "registered"], "auth-ok once, however the token came"
    assert sink.messages[0]["userId"] == user_id


async def test_a_wrong_token_closes_with_1008(node: Node) -> None:
    session, _, closer = node.session()
    session.begin(None, auth_timeout=0)
    await handled(session.on_text(text({"type": "auth", "token": "vr_not-a-token"})))
    assert closer.closes == [(1008, "Unauthorized")]


async def test_a_refused_upgrade_closes_with_1008_and_a_known_one_is_admitted(node: Node) -> None:
    refused, _, refused_closer = node.session()
    refused.begin(None, refused=True)
    assert refused_closer.closes == [(1008, "Unauthorized")]
    admitted, sink, closer = node.session()
    admitted.begin(Identified("user_x", "bearer header"))
    assert sink.messages == [{"type": "auth-ok", "userId": "user_x"}]
    assert closer.closes == []


async def test_no_token_in_time_closes_with_1008(node: Node) -> None:
    session, _, closer = node.session()
    session.begin(None, auth_timeout=0.01)
    await closer.closed.wait()
    assert closer.closes == [(1008, "Unauthorized")]


async def test_silent_sessions_that_arrived_together_are_closed_spread_over_a_fifth_of_the_timeout(
    node: Node,
) -> None:
    loop = asyncio.get_running_loop()
    deadlines = []
    for _ in range(200):
        session, _, _ = node.session()
        started = loop.time()
        session.begin(None, auth_timeout=10)
        assert session._deadline is not None
        deadlines.append(session._deadline.when() - started)
        session._cancel_deadline()
    assert min(deadlines) >= 10, "never before the timeout the contract gives"
    assert max(deadlines) <= 12
    assert max(deadlines) - min(deadlines) > 1, "spread, not all at once"


async def test_another_users_token_on_an_authenticated_connection_is_refused(node: Node) -> None:
    ana, ana_token = await node.user("ana")
    _, bob_token = await node.user("bob")
    session, sink, closer = node.session()
    session.begin(Identified(ana, "bearer header"))
    await handled(session.on_text(text({"type": "auth", "token": ana_token})))
    await handled(session.on_text(text({"type": "auth", "token": bob_token})))
    assert sink.types() == ["auth-ok", "error"]
    assert sink.messages[1]["code"] == "unauthorized"
    assert closer.closes == []


async def test_a_failure_inside_the_relay_is_answered_internal_and_the_session_goes_on(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_id, _ = await node.user("ana")
    stream_id = await node.stream(user_id)

    async def broken(*_args: object) -> None:
        raise RuntimeError("the database said something unexpected")

    monkeypatch.setattr(node.router, "register", broken)
    session, sink, closer = node.session()
    session.begin(Identified(user_id, "bearer header"))
    await handled(session.on_text(text({"type": "register", "streamId": stream_id})))
    assert sink.messages[-1] == {
        "type": "error",
        "code": "internal",
        "message": "the relay failed on this message; it is logged",
    }
    assert session.on_text(text({"type": "ping"})) is None
    assert sink.types()[-1] == "pong"
    assert closer.closes == []


async def test_text_that_is_not_utf8_is_not_answered_but_raised(node: Node) -> None:
    session, sink, _ = node.session()
    session.begin(Identified("user_x", "bearer header"))
    with pytest.raises(NotUtf8):
        session.on_text(b'{"type": "ping", "x": "\xff"}')
    await handled(session.on_text(b'{"type": "ping", '))  # valid UTF-8, not JSON: an ordinary error
    assert sink.types() == ["auth-ok", "error"]
    assert sink.messages[-1]["code"] == "invalid-json"
