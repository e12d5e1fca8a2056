"""The client's rules without a socket or an event loop: feed ClientState what happens, check what it sends.

As websockets tests its sans-I/O ``Protocol`` apart from its connections, these
tests drive :class:`relay.client.state.ClientState` by hand: a connection is any
object, the relay's messages are JSON texts, and what the state answers is the
text it would send and the messages it would deliver.  ``tests/client/`` checks
the same promises against a real relay.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from relay.client import Alert, AlertQueueFull, AlertRejected, ErrorReport, ForbiddenError, Frame
from relay.client.attachments import Attachment
from relay.client.state import ClientState, Received
from relay.wire import decode_binary_frame, encode_binary_frame

STREAM = "stream_1"


def text(kind: str, **body: Any) -> str:
    """A message of the relay, as it arrives on the WebSocket."""
    return orjson.dumps({"type": kind, **body}).decode()


def alert_text(alert_id: str, stream_id: str = STREAM, ref: str | None = None) -> str:
    return text(
        "alert",
        id=alert_id,
        streamId=stream_id,
        severity="high",
        message=f"alert {alert_id}",
        metadata={},
        timestamp=1,
        createdAt="2026-01-01T00:00:00.000Z",
        ref=ref,
    )


def alert(alert_id: str) -> Alert:
    """The alert ``alert_text(alert_id)`` stands for, as REST would list it."""
    return Alert(alert_id, STREAM, "high", f"alert {alert_id}", {}, 1, "2026-01-01T00:00:00.000Z")


def sent(messages: list[str]) -> list[dict[str, Any]]:
    return [orjson.loads(message) for message in messages]


def phone() -> Attachment:
    """A producer of STREAM that consumes its alerts (what ``register()`` attaches)."""
    return Attachment(STREAM, "register", "mobile", ("alert",), ("video-frame", "alert"), "binary")


def dashboard(*, consumes: tuple[str, ...] = ("alert",), produces: tuple[str, ...] = ()) -> Attachment:
    return Attachment(STREAM, "subscribe", "dashboard", consumes, produces, "json")


def attached(state: ClientState, attachment: Attachment, connection: object, *, newest: str | None) -> None:
    """Attach ``attachment`` on ``connection`` as the relay confirms it, alerts starting after ``newest``."""
    state.attach(attachment)
    if state.resume_lookup(attachment) == "newest":
        state.start_alerts_after(attachment.stream_id, newest)
    state.attach_messages(attachment, connection)
    for kind in sorted(attachment.awaiting):
        state.receive(text(kind, streamId=attachment.stream_id))
    assert attachment.established


def open_producer(connection: object) -> ClientState:
    """A state with a phone registered on an open ``connection``."""
    state = ClientState()
    state.connection_made()
    state.receive(text("auth-ok", userId="user_1"))
    attached(state, phone(), connection, newest=None)
    state.opened()
    return state


def test_auth_ok_authenticates_and_names_the_user() -> None:
    state = ClientState()
    assert state.receive(text("auth-ok", userId="user_1")) == Received(authenticated=True)
    assert state.user_id == "user_1"


def test_a_phone_is_registered_then_subscribed_to_its_alerts_from_the_newest_stored() -> None:
    state, connection = ClientState(), object()
    registration = phone()
    state.attach(registration)
    assert state.unattached(connection) == [registration]
    assert state.resume_lookup(registration) == "newest", "where its alerts start is asked over REST"
    state.start_alerts_after(STREAM, "alert_7")
    assert sent(state.attach_messages(registration, connection)) == [
        {
            "type": "register",
            "streamId": STREAM,
            "clientType": "mobile",
            "produces": ["video-frame", "alert"],
            "consumes": [],
        },
        {
            "type": "subscribe",
            "streamId": STREAM,
            "clientType": "mobile",
            "consumes": ["alert"],
            "frameFormat": "binary",
            "sinceAlertId": "alert_7",
        },
    ]
    assert state.receive(text("registered", streamId=STREAM)) == Received(), "half of it confirmed"
    assert state.receive(text("subscribed", streamId=STREAM)) == Received(settled=STREAM)
    assert state.unattached(connection) == []
    assert state.unattached(object()) == [registration], "a new connection attaches it again"


def test_a_consumer_of_frames_only_needs_no_resume_point() -> None:
    state, connection = ClientState(), object()
    ml = dashboard(consumes=("video-frame",), produces=("alert",))
    state.attach(ml)
    assert state.resume_lookup(ml) is None
    assert sent(state.attach_messages(ml, connection)) == [
        {
            "type": "subscribe",
            "streamId": STREAM,
            "clientType": "dashboard",
            "consumes": ["video-frame"],
            "frameFormat": "json",
            "produces": ["alert"],
        }
    ]
    assert state.producing_stream(None, "alert") == STREAM
    with pytest.raises(ValueError, match="may not send video-frame"):
        state.producing_stream(STREAM, "video-frame")


def test_a_refused_first_attachment_is_left_to_its_caller() -> None:
    state, connection = ClientState(), object()
    refused = dashboard()
    state.attach(refused)
    state.attach_messages(refused, connection)
    answer = state.receive(text("error", code="forbidden", message="not yours", streamId=STREAM))
    assert answer == Received(settled=STREAM), "the waiting subscribe() hears it, the application's inbox does not"
    assert isinstance(refused.failure, ForbiddenError)
    assert refused.failure.stream_id == STREAM
    assert state.settle_refused(refused) is None, "subscribe() raises it"
    state.forget(refused)
    assert state.streams == []


def test_an_error_no_attachment_waits_for_reaches_the_application() -> None:
    state = open_producer(object())
    report = state.receive(text("error", code="rate-limited", message="slow down", streamId=STREAM))
    assert report == Received(deliver=ErrorReport("rate-limited", "slow down", STREAM, None))
    unreadable = state.receive("not json").deliver
    assert isinstance(unreadable, ErrorReport)
    assert unreadable.code == "unreadable-message"
    assert state.receive(text("something-new")) == Received(), "a type the relay may add later"


def test_a_stream_refused_again_on_a_reconnect_is_given_up_and_reported() -> None:
    state = open_producer(object())
    state.connection_lost()
    connection = object()
    state.connection_made()
    (registration,) = state.unattached(connection)
    state.attach_messages(registration, connection)
    state.receive(text("error", code="forbidden", message="stream deleted", streamId=STREAM))
    report = state.settle_refused(registration)
    assert report is not None
    assert (report.code, report.stream_id) == ("forbidden", STREAM)
    assert "refused register of stream_1 again" in report.message
    assert state.streams == []
    assert state.unattached(connection) == []


def test_an_alert_is_sent_at_once_when_open_and_leaves_the_queue_once_stored() -> None:
    state = open_producer(object())
    ref, wire = state.alert("high", "person", stream_id=None, metadata={"confidence": 0.9}, timestamp=5, ref=None)
    assert wire is not None
    assert orjson.loads(wire) == {
        "type": "alert",
        "streamId": STREAM,
        "severity": "high",
        "message": "person",
        "metadata": {"confidence": 0.9},
        "timestamp": 5,
        "ref": ref,
    }
    assert ref.startswith("py-")
    assert state.alert("high", "person", stream_id=None, metadata=None, timestamp=5, ref=ref) == (ref, None), (
        "the same ref is the same alert, sent once here"
    )
    assert state.receive(text("alert-stored", id="alert_1", ref=ref)) == Received()
    assert (len(state.pending), state.stats.alerts_confirmed, state.stored_alert_id(ref)) == (0, 1, "alert_1")
    assert state.alert("high", "person", stream_id=None, metadata=None, timestamp=5, ref=ref) == (ref, None)
    assert len(state.pending) == 0, "an alert already stored is not queued again"


def test_an_unconfirmed_alert_is_resent_on_the_next_connection_and_when_due() -> None:
    state = open_producer(object())
    state.connection_lost()
    ref, wire = state.alert("low", "while away", stream_id=STREAM, metadata=None, timestamp=1, ref="r1")
    assert (wire, len(state.pending)) == (None, 1), "offline: queued, not sent"

    connection = object()
    state.connection_made()
    (registration,) = state.unattached(connection)
    state.attach_messages(registration, connection)
    state.receive(text("registered", streamId=STREAM))
    state.receive(text("subscribed", streamId=STREAM))
    (resent,) = state.resend_unconfirmed()
    assert orjson.loads(resent)["ref"] == ref
    state.opened()
    assert state.alerts_due(resend_after=60) == [], "just sent"
    assert [orjson.loads(due)["ref"] for due in state.alerts_due(resend_after=0)] == [ref], "unconfirmed: again"
    state.receive(text("alert-stored", id="alert_1", ref=ref))
    assert state.alerts_due(resend_after=0) == []


def test_alerts_are_checked_and_bounded_before_they_are_queued() -> None:
    state = ClientState(max_pending_alerts=1)
    attached(state, phone(), object(), newest=None)
    with pytest.raises(ValueError, match="severity"):
        state.alert("urgent", "x", stream_id=None, metadata=None, timestamp=None, ref=None)
    state.alert("low", "x", stream_id=None, metadata=None, timestamp=None, ref="r1")
    with pytest.raises(AlertQueueFull):
        state.alert("low", "y", stream_id=None, metadata=None, timestamp=None, ref="r2")
    assert [pending.ref for pending in state.pending] == ["r1"]


def test_an_alert_refused_for_good_is_rejected_and_reported_and_a_rate_limited_one_waits() -> None:
    state = open_producer(object())
    state.alert("low", "a", stream_id=None, metadata=None, timestamp=1, ref="slow")
    state.alert("low", "b", stream_id=None, metadata=None, timestamp=1, ref="bad")
    state.alert("low", "c", stream_id=None, metadata=None, timestamp=1, ref="no-database")
    assert state.receive(text("error", code="rate-limited", message="later", ref="slow")) == Received()
    assert state.receive(text("error", code="unavailable", message="later", ref="no-database")) == Received()
    refused = state.receive(text("error", code="too-large", message="too long", ref="bad", streamId=STREAM))
    assert refused == Received(deliver=ErrorReport("too-large", "too long", STREAM, "bad"))
    assert [pending.ref for pending in state.pending] == ["slow", "no-database"], "both are resent later"


def test_a_rejected_alert_settles_whoever_waits_for_it() -> None:
    state = open_producer(object())
    state.alert("low", "b", stream_id=None, metadata=None, timestamp=1, ref="bad")
    (pending,) = state.pending
    state.receive(text("error", code="too-large", message="too long", ref="bad"))
    assert isinstance(pending.outcome, AlertRejected)
    assert (pending.outcome.code, pending.outcome.ref) == ("too-large", "bad")


def test_a_replayed_alert_is_delivered_once_and_moves_the_resume_point() -> None:
    state = open_producer(object())
    first = state.receive(alert_text("alert_1")).deliver
    assert isinstance(first, Alert)
    assert state.receive(alert_text("alert_1")) == Received(), "a replay overlapping what was received"
    assert state.stats.alerts_received == 1

    state.connection_lost()
    connection = object()
    state.connection_made()
    (registration,) = state.unattached(connection)
    assert state.resume_lookup(registration) is None
    subscribe = sent(state.attach_messages(registration, connection))[-1]
    assert subscribe["sinceAlertId"] == "alert_1"


def test_a_stream_without_alerts_then_catches_up_on_every_alert_stored_meanwhile() -> None:
    state = ClientState()
    attached(state, dashboard(), object(), newest=None)
    state.connection_lost()
    connection = object()
    state.connection_made()
    (subscription,) = state.unattached(connection)
    assert state.resume_lookup(subscription) == "missed", "no id to resume from: list them over REST"
    newest_first = [alert("alert_3"), alert("alert_2"), alert("alert_1")]
    assert [a.id for a in state.missed_alerts(newest_first)] == ["alert_1", "alert_2", "alert_3"]
    assert state.missed_alerts(newest_first) == [], "each once"
    assert sent(state.attach_messages(subscription, connection))[-1]["sinceAlertId"] == "alert_3"


def reconnect_with_a_forgotten_resume_point(state: ClientState, connection: object) -> Attachment:
    """A new connection on which the relay does not know the alert the stream resumes after."""
    state.connection_lost()
    state.connection_made()
    (subscription,) = state.unattached(connection)
    state.attach_messages(subscription, connection)
    unknown = text("error", code="invalid-message", message="unknown sinceAlertId", streamId=STREAM)
    assert state.receive(unknown) == Received(settled=STREAM)
    return subscription


def test_a_resume_point_the_relay_forgot_is_retried_once_from_the_newest_alert() -> None:
    state = ClientState()
    attached(state, dashboard(), object(), newest="alert_9")
    connection = object()
    subscription = reconnect_with_a_forgotten_resume_point(state, connection)
    report = state.settle_refused(subscription)
    assert report is not None
    assert (report.code, report.stream_id) == ("invalid-message", STREAM)
    assert "cannot resume alerts after alert_9" in report.message, "the application hears alerts may be missing"
    assert state.unattached(connection) == [subscription], "attached again on this connection"
    assert state.resume_lookup(subscription) == "newest"
    state.start_alerts_after(STREAM, "alert_1")
    assert sent(state.attach_messages(subscription, connection))[-1]["sinceAlertId"] == "alert_1"
    state.receive(text("subscribed", streamId=STREAM))
    assert state.unattached(connection) == []

    subscription = reconnect_with_a_forgotten_resume_point(state, object())
    retried = state.settle_refused(subscription)
    assert retried is not None
    assert "cannot resume alerts after alert_1" in retried.message, "each new connection may retry once"


def test_a_resume_point_refused_twice_on_one_connection_gives_the_stream_up() -> None:
    state = ClientState()
    attached(state, dashboard(), object(), newest="alert_9")
    connection = object()
    subscription = reconnect_with_a_forgotten_resume_point(state, connection)
    state.settle_refused(subscription)
    state.start_alerts_after(STREAM, "alert_1")
    state.attach_messages(subscription, connection)
    state.receive(text("error", code="invalid-message", message="unknown sinceAlertId", streamId=STREAM))
    report = state.settle_refused(subscription)
    assert report is not None
    assert "refused subscribe of stream_1 again" in report.message
    assert state.streams == []


def test_frames_go_out_only_on_an_open_connection_in_the_form_asked() -> None:
    state = ClientState()
    attached(state, phone(), object(), newest=None)
    assert state.frame(STREAM, b"\xff\xd8", timestamp=1, form="binary", content_type="image/jpeg") is None
    assert state.stats.frames_dropped_offline == 1, "never kept for later"
    state.opened()
    binary = state.frame(STREAM, b"\xff\xd8", timestamp=2, form="binary", content_type="image/jpeg")
    assert isinstance(binary, bytes)
    header, image = decode_binary_frame(binary)
    assert (header["streamId"], header["timestamp"], bytes(image)) == (STREAM, 2, b"\xff\xd8")
    as_json = state.frame(STREAM, b"\xff\xd8", timestamp=3, form="json", content_type="image/jpeg")
    assert isinstance(as_json, str)
    assert orjson.loads(as_json) == {
        "type": "video-frame",
        "streamId": STREAM,
        "timestamp": 3,
        "contentType": "image/jpeg",
        "data": "/9g=",
    }


def test_received_frames_are_delivered_and_counted() -> None:
    state = open_producer(object())
    received = state.receive(encode_binary_frame(STREAM, b"\xff\xd8", timestamp=4))
    assert received == Received(deliver=Frame(STREAM, 4, b"\xff\xd8", "image/jpeg"))
    assert state.stats.frames_received == 1


def test_unsubscribing_sends_only_on_an_open_connection_and_forgets_the_stream() -> None:
    state = open_producer(object())
    assert orjson.loads(state.unsubscribe(STREAM) or "{}") == {"type": "unsubscribe", "streamId": STREAM}
    assert state.unsubscribe(STREAM) is None, "no longer attached"
    assert state.receive(text("unsubscribed", streamId=STREAM)) == Received(unsubscribed=STREAM)
    state.connection_lost()
    attached(state, dashboard(), object(), newest=None)
    assert state.unsubscribe(STREAM) is None, "offline: nothing to send, and the next connection will not attach it"
    assert state.streams == []
