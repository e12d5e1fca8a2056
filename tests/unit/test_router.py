"""The router's rules, without sockets: permissions, delivery in each form, alerts stored first, replay."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from relay.wire import AlertIn, ProtocolError, Register, Subscribe, Unsubscribe, encode_binary_frame, parse_binary
from tests.support import JPEG
from tests.unit.rules import Node, node_on


@pytest.fixture
async def node(sqlite_url: str) -> AsyncIterator[Node]:
    async with node_on(sqlite_url) as node:
        yield node


def frame(stream_id: str, timestamp: int = 1) -> Any:
    return parse_binary(encode_binary_frame(stream_id, JPEG, timestamp=timestamp))


def alert(stream_id: str, ref: str, message: str = "person") -> AlertIn:
    return AlertIn(stream_id, "high", message, {"confidence": 0.9}, 1, ref)


async def test_only_the_owner_registers_and_the_stream_goes_online(node: Node) -> None:
    ana, _ = await node.user("ana")
    bob, _ = await node.user("bob")
    stream_id = await node.stream(ana)
    intruder, _ = node.connection(bob)
    with pytest.raises(ProtocolError) as refused:
        await node.router.register(intruder, Register(stream_id))
    assert refused.value.code == "forbidden"

    phone, sink = node.connection(ana)
    await node.router.register(phone, Register(stream_id))
    assert sink.types() == ["registered"]
    await node.status.settled()
    stored = await node.store.streams.get(stream_id)
    assert stored is not None
    assert stored.status == "online"


async def test_frames_reach_each_consumer_in_its_form_and_only_from_a_permitted_producer(node: Node) -> None:
    ana, _ = await node.user("ana")
    bob, _ = await node.user("bob")
    stream_id = await node.stream(ana)
    phone, phone_sink = node.connection(ana)
    dashboard, dashboard_sink = node.connection(ana)
    ml, ml_sink = node.connection(ana)
    await node.router.register(phone, Register(stream_id))
    await node.router.subscribe(dashboard, Subscribe(stream_id, consumes=frozenset({"video-frame"})))
    await node.router.subscribe(ml, Subscribe(stream_id, consumes=frozenset({"video-frame"}), frame_format="binary"))

    assert node.router.frame(phone, frame(stream_id)) is None, "a permitted frame takes the synchronous path"
    assert [binary for _, binary in dashboard_sink.frames] == [False]
    assert [binary for _, binary in ml_sink.frames] == [True]
    assert phone_sink.frames == []

    node.router.frame(dashboard, frame(stream_id))  # a consumer that may not produce frames
    assert dashboard_sink.messages[-1]["code"] == "not-registered"
    stranger, stranger_sink = node.connection(bob)
    refusal = node.router.frame(stranger, frame(stream_id))  # the owner is known by now: answered at once
    assert refusal is None
    assert stranger_sink.messages[-1]["code"] == "forbidden"
    assert len(ml_sink.frames) == 1, "refused frames go nowhere"


async def test_frames_over_the_rate_are_dropped_with_one_warning(sqlite_url: str) -> None:
    async with node_on(sqlite_url, max_fps=1) as node:
        ana, _ = await node.user("ana")
        stream_id = await node.stream(ana)
        phone, sink = node.connection(ana)
        await node.router.register(phone, Register(stream_id))
        for timestamp in range(5):
            node.router.frame(phone, frame(stream_id, timestamp))
        assert [message.get("code") for message in sink.messages] == [None, "rate-limited"]


async def test_an_alert_is_stored_confirmed_and_sent_on_once(node: Node) -> None:
    ana, _ = await node.user("ana")
    stream_id = await node.stream(ana)
    phone, phone_sink = node.connection(ana)
    ml, ml_sink = node.connection(ana)
    await node.router.register(phone, Register(stream_id))
    await node.router.subscribe(ml, Subscribe(stream_id, produces=frozenset({"alert"})))
    heard: list[dict[str, Any]] = []
    node.hooks.on_alert_stored(heard.append)

    await node.router.alert(ml, alert(stream_id, "r1"))
    await node.router.alert(ml, alert(stream_id, "r1"))  # resent: confirmed again only
    confirmations = [message for message in ml_sink.messages if message["type"] == "alert-stored"]
    assert len(confirmations) == 2
    assert confirmations[0]["id"] == confirmations[1]["id"]
    assert "alert" not in ml_sink.types(), "the sender does not get its own alert back"
    assert [message["id"] for message in phone_sink.messages if message["type"] == "alert"] == [confirmations[0]["id"]]
    assert [entry["id"] for entry in heard] == [confirmations[0]["id"]]
    rows = await node.store.alerts.after(stream_id, 0, limit=10)
    assert [row.ref for row in rows] == ["r1"]


async def test_replay_comes_before_live_alerts_and_none_is_sent_twice(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A live alert stored while a consumer replays is held back, then dropped if the replay had it."""
    ana, _ = await node.user("ana")
    stream_id = await node.stream(ana)
    ml, _ = node.connection(ana)
    await node.router.subscribe(ml, Subscribe(stream_id, consumes=frozenset(), produces=frozenset({"alert"})))
    await node.router.alert(ml, alert(stream_id, "a1"))
    await node.router.alert(ml, alert(stream_id, "a2"))
    first = (await node.store.alerts.after(stream_id, 0, limit=1))[0]

    real_after = node.store.alerts.after
    calls = 0

    async def after_with_a_live_alert_meanwhile(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            await node.router.alert(ml, alert(stream_id, "a3"))  # arrives live while the replay runs
        return await real_after(*args, **kwargs)

    monkeypatch.setattr(node.store.alerts, "after", after_with_a_live_alert_meanwhile)
    dashboard, sink = node.connection(ana)
    await node.router.subscribe(dashboard, Subscribe(stream_id, since_alert_id=first.id))
    await node.router.alert(ml, alert(stream_id, "a4"))
    alerts = [message["message"] for message in sink.messages if message["type"] == "alert"]
    refs = [message.get("ref") for message in sink.messages if message["type"] == "alert"]
    assert sink.types()[0] == "subscribed"
    assert refs == ["a2", "a3", "a4"], alerts


async def test_an_unknown_resume_point_is_refused(node: Node) -> None:
    ana, _ = await node.user("ana")
    stream_id = await node.stream(ana)
    dashboard, _ = node.connection(ana)
    with pytest.raises(ProtocolError) as refused:
        await node.router.subscribe(dashboard, Subscribe(stream_id, since_alert_id="alert_gone"))
    assert refused.value.code == "invalid-message"


async def test_the_producer_leaving_takes_the_stream_offline(node: Node) -> None:
    ana, _ = await node.user("ana")
    stream_id = await node.stream(ana)
    watcher, watcher_sink = node.connection(ana)
    await node.router.subscribe(watcher, Subscribe(stream_id, consumes=frozenset({"stream-status"})))
    phone, _ = node.connection(ana)
    await node.router.register(phone, Register(stream_id))
    node.router.frame(phone, frame(stream_id))
    node.router.unsubscribe(phone, Unsubscribe(stream_id))
    await node.status.settled()
    statuses = [message["status"] for message in watcher_sink.messages if message["type"] == "stream-status"]
    assert statuses == ["offline", "online", "streaming", "offline"]
    assert not node.hub.get_producer(stream_id)
