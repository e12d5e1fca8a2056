"""The client's parts without a relay: backoff, inbox, endpoints, parsing, the pending alert queue."""

from __future__ import annotations

import asyncio
import itertools

import orjson
import pytest

from relay.client import (
    Alert,
    AlertQueueFull,
    AlertRejected,
    Backoff,
    ClientClosed,
    ErrorReport,
    Frame,
    RelayProtocolError,
    StreamStatus,
)
from relay.client.inbox import Inbox
from relay.client.messages import Control, parse_message
from relay.client.pending import PendingAlerts
from relay.client.recent import Recent
from relay.client.urls import endpoints
from relay.wire import encode_binary_frame


def test_backoff_grows_exponentially_to_its_cap_with_full_jitter() -> None:
    highest = Backoff(base=0.5, cap=30, rng=lambda: 1.0)
    assert [highest.next_delay() for _ in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    lowest = Backoff(base=0.5, cap=30, rng=lambda: 0.0)
    assert {lowest.next_delay() for _ in range(5)} == {0.0}, "full jitter: any delay from zero up"
    draws = itertools.cycle([0.25, 0.75])
    jittered = Backoff(base=1, cap=8, rng=lambda: next(draws))
    assert [jittered.next_delay() for _ in range(5)] == [0.25, 1.5, 1.0, 6.0, 2.0]
    jittered.reset()
    assert jittered.ceiling() == 1
    with pytest.raises(ValueError, match="base"):
        Backoff(base=0)


def test_backoff_draws_spread_over_the_whole_range() -> None:
    backoff = Backoff(base=1, cap=1)
    draws = [backoff.next_delay() for _ in range(2000)]
    assert 0 <= min(draws) < 0.05
    assert 0.95 < max(draws) < 1


def frame(timestamp: int) -> Frame:
    return Frame("s", timestamp, b"\xff\xd8")


def alert(name: str) -> Alert:
    return Alert(name, "s", "low", name, {}, 0, "2026-01-01T00:00:00.000Z")


async def test_the_inbox_keeps_every_alert_and_only_the_newest_frames() -> None:
    inbox = Inbox(max_frames=2)
    for message in (frame(1), alert("a"), frame(2), frame(3), alert("b"), frame(4)):
        inbox.put(message)
    received = [await inbox.get() for _ in range(len(inbox))]
    assert received == [alert("a"), frame(3), alert("b"), frame(4)]
    assert inbox.frames_dropped == 2


async def test_the_inbox_hands_out_what_waits_then_its_end() -> None:
    inbox = Inbox()
    waiting = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    inbox.put(alert("a"))
    assert await waiting == alert("a")
    inbox.put(alert("b"))
    inbox.end(ClientClosed("closed"))
    assert await inbox.get() == alert("b")
    with pytest.raises(ClientClosed):
        await inbox.get()


@pytest.mark.parametrize(
    ("url", "http_base", "ws_url"),
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000", "ws://127.0.0.1:8000/api/streams/ws"),
        ("https://relay.example.com/", "https://relay.example.com", "wss://relay.example.com/api/streams/ws"),
        ("ws://h:1/api/streams/ws", "http://h:1", "ws://h:1/api/streams/ws"),
        ("wss://h/base/api/streams/ws", "https://h/base", "wss://h/base/api/streams/ws"),
    ],
)
def test_both_endpoints_come_from_one_url(url: str, http_base: str, ws_url: str) -> None:
    assert (endpoints(url).http_base, endpoints(url).ws_url) == (http_base, ws_url)


@pytest.mark.parametrize("url", ["127.0.0.1:8000", "ftp://host", "http://"])
def test_a_url_that_is_not_a_relay_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="relay URL"):
        endpoints(url)


def test_messages_from_the_relay_become_typed_values() -> None:
    binary = parse_message(encode_binary_frame("s", b"\xff\xd8\xff", timestamp=5))
    assert binary == Frame("s", 5, b"\xff\xd8\xff", "image/jpeg")
    json_frame = parse_message('{"type":"video-frame","streamId":"s","timestamp":6,"data":"/9j/","contentType":"x/y"}')
    assert json_frame == Frame("s", 6, b"\xff\xd8\xff", "x/y")
    body = {
        "type": "alert",
        "id": "alert_1",
        "streamId": "s",
        "severity": "high",
        "message": "m",
        "metadata": {"objectType": "person"},
        "timestamp": 1,
        "createdAt": "2026-11-25T20:09:14.123Z",
        "ref": "r",
        "future": "ignored",
    }
    assert parse_message(orjson.dumps(body).decode()) == Alert(
        "alert_1", "s", "high", "m", {"objectType": "person"}, 1, "2026-11-25T20:09:14.123Z", "r"
    )
    assert parse_message('{"type":"stream-status","streamId":"s","status":"online","lastSeen":null}') == StreamStatus(
        "s", "online", None
    )
    assert parse_message('{"type":"error","code":"forbidden","message":"no","streamId":"s"}') == ErrorReport(
        "forbidden", "no", "s", None
    )
    assert parse_message('{"type":"alert-stored","id":"alert_1","ref":"r"}') == Control(
        "alert-stored", {"type": "alert-stored", "id": "alert_1", "ref": "r"}
    )
    assert parse_message('{"type":"something-new"}') is None


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[1, 2]",
        '{"type": "alert", "id": "x"}',
        '{"type": "video-frame", "streamId": "s", "timestamp": 1, "data": "***"}',
        b"\x00\x00",
        b"\x00\x00\x00\x02{}",
    ],
)
def test_a_message_the_client_cannot_read_is_a_protocol_error(raw: str | bytes) -> None:
    with pytest.raises(RelayProtocolError):
        parse_message(raw)


async def test_the_pending_queue_refuses_new_alerts_when_full_and_settles_each_once() -> None:
    pending = PendingAlerts(limit=2)
    first = pending.add("r1", "s", "{}")
    assert pending.add("r1", "s", "{}") is first, "the same ref is one alert"
    pending.add("r2", "s", "{}")
    with pytest.raises(AlertQueueFull) as full:
        pending.add("r3", "s", "{}")
    assert full.value.ref == "r3"
    assert "r3" not in pending
    assert [p.ref for p in pending.due(resend_after=60)] == ["r1", "r2"], "never sent: due at once"
    pending.mark_sent(first)
    assert [p.ref for p in pending.due(resend_after=60)] == ["r2"]

    pending.confirm("r1", "alert_1")
    assert await first.stored == "alert_1"
    rejected = pending.future("r2")
    pending.reject("r2", "too-large", "message too long")
    assert rejected is not None
    with pytest.raises(AlertRejected, match="too-large"):
        await rejected
    assert len(pending) == 0
    await asyncio.wait_for(pending.drained(), 1)


def test_recent_remembers_a_bounded_number_of_keys() -> None:
    recent: Recent[int] = Recent(limit=2)
    assert recent.add("a", 1)
    assert not recent.add("a", 9), "a duplicate"
    recent.add("b", 2)
    recent.add("c", 3)
    assert "a" not in recent
    assert (recent.get("b"), recent.get("c")) == (2, 3)
