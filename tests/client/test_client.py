"""The Python client against a real relay: streams, frames, alerts, REST, errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import numpy as np
import pytest

from relay.client import (
    Alert,
    AlertRejected,
    AuthenticationError,
    Backoff,
    BlockingRelayClient,
    ClientClosed,
    ErrorReport,
    ForbiddenError,
    Frame,
    Message,
    RelayClient,
    StreamStatus,
)
from relay.wire import ProtocolError
from tests.support import GUARD, RelayHarness, make_jpeg, running_relay

M = TypeVar("M", bound=Message)
pytestmark = pytest.mark.timeout(60)  # a guard against hangs; every wait here is for an event


def fast_backoff() -> Backoff:
    return Backoff(base=0.02, cap=0.2)


@pytest.fixture
async def clients(relay: RelayHarness) -> AsyncIterator[Callable[..., RelayClient]]:
    """Make clients of the test relay that are closed after the test."""
    made: list[RelayClient] = []

    def make(token: str | None, **options: Any) -> RelayClient:
        client = RelayClient(relay.base, token, backoff=fast_backoff(), **options)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


async def next_of(client: RelayClient, kind: type[M]) -> M:
    """The next message of ``kind``, skipping others."""
    async with asyncio.timeout(GUARD):
        while True:
            message = await client.receive()
            if isinstance(message, kind):
                return message


async def test_frames_and_alerts_travel_between_a_phone_an_ml_service_and_a_dashboard(
    relay: RelayHarness, clients: Callable[..., RelayClient]
) -> None:
    _, token = await relay.user()
    phone, ml, dashboard = clients(token), clients(token), clients(token, frame_format="json")
    for client in (phone, ml, dashboard):
        await client.connect()
    stream_id = await phone.register_stream("Lobby phone", "ios", {"floor": 1})
    await phone.register(stream_id)
    await ml.subscribe(stream_id, consumes=["video-frame"], produces=["alert"], client_type="ml-service")
    await dashboard.subscribe(stream_id)

    image = np.zeros((48, 64, 3), np.uint8)
    image[:, 32:] = 255
    assert await phone.send_frame(image, timestamp=1730000000000)
    frame = await next_of(ml, Frame)
    assert (frame.stream_id, frame.timestamp, frame.content_type) == (stream_id, 1730000000000, "image/jpeg")
    decoded = frame.image()
    assert decoded.shape == (48, 64, 3)
    assert decoded[:, :28].mean() < 10, "the picture survived the trip: black on the left"
    assert decoded[:, 36:].mean() > 245, "and white on the right"
    jpeg = make_jpeg(200)
    assert await phone.send_frame(jpeg, form="json")
    assert (await next_of(ml, Frame)).data == jpeg, "a JSON frame arrives as the same bytes, in binary"
    assert (await next_of(dashboard, Frame)).timestamp == 1730000000000

    metadata = {
        "confidence": 0.93,
        "location": {"x": 0.4, "y": 0.6, "width": 0.1, "height": 0.3},
        "objectType": "person",
    }
    from_numpy = {**metadata, "confidence": np.float64(0.93)}  # as detectors hand numbers out
    ref = await ml.send_alert("high", "person detected", stream_id=stream_id, metadata=from_numpy)
    alert_id = await asyncio.wait_for(ml.alert_stored(ref), GUARD)
    for receiver in (phone, dashboard):
        alert = await next_of(receiver, Alert)
        assert (alert.id, alert.ref, alert.severity, alert.metadata) == (alert_id, ref, "high", metadata)
    assert ml.stats.alerts_received == 0, "the sender gets alert-stored, not its own alert"

    statuses = []
    await phone.unsubscribe(stream_id)
    while "offline" not in statuses:
        statuses.append((await next_of(dashboard, StreamStatus)).status)
    assert statuses[-1] == "offline"


async def test_rest_helpers_log_in_register_list_and_page_through_alerts(
    relay: RelayHarness, clients: Callable[..., RelayClient]
) -> None:
    await relay.user("alice", "s3cret")
    client = clients(None)
    token = await client.login("alice", "s3cret")
    assert token.startswith("vr_")
    assert client.user_id is not None
    stream_id = await client.register_stream("Cam", metadata={"k": "v"})
    streams = await client.list_streams()
    assert [(s.id, s.device_name, s.metadata, s.status) for s in streams] == [(stream_id, "Cam", {"k": "v"}, "offline")]

    await client.subscribe(stream_id, consumes=[], produces=["alert"])
    refs = [await client.send_alert("low", f"n{i}", ref=f"r{i}") for i in range(5)]
    await asyncio.wait_for(client.flush_alerts(), GUARD)
    listed = [alert async for alert in client.alerts(stream_ids=[stream_id], page_size=2)]
    assert [alert.ref for alert in listed] == refs[::-1], "newest first, every page followed"
    assert len({alert.id for alert in listed}) == 5


async def test_logging_in_again_replaces_the_clients_previous_token_only(
    relay: RelayHarness, clients: Callable[..., RelayClient]
) -> None:
    await relay.user("carol", "pw")
    _, given = await relay.user("carol")
    client = clients(given)
    first = await client.login("carol", "pw")
    second = await client.login("carol", "pw")
    assert (await relay.api("GET", "/api/streams/list", token=first)).status == 401, "replaced"
    assert (await relay.api("GET", "/api/streams/list", token=second)).status == 200
    assert (await relay.api("GET", "/api/streams/list", token=given)).status == 200, "not the constructor's token"

    with pytest.raises(AuthenticationError):
        await clients(None).login("alice", "wrong")


async def test_a_bad_token_fails_fast_and_is_not_retried(clients: Callable[..., RelayClient]) -> None:
    client = clients("vr_not-a-token")
    with pytest.raises(AuthenticationError, match="1008"):
        await asyncio.wait_for(client.connect(), GUARD)
    assert client.stats.reconnects == 0
    with pytest.raises(AuthenticationError):
        await client.register_stream("x")
    with pytest.raises(AuthenticationError):
        await client.receive()


async def test_another_users_stream_is_forbidden(relay: RelayHarness, clients: Callable[..., RelayClient]) -> None:
    _, owner = await relay.user()
    _, intruder = await relay.user()
    stream_id = await relay.stream(owner)
    client = clients(intruder)
    await client.connect()
    with pytest.raises(ForbiddenError) as refused:
        await client.subscribe(stream_id, consumes=["video-frame"])  # refused on the WebSocket
    assert (refused.value.code, refused.value.stream_id) == ("forbidden", stream_id)
    with pytest.raises(ForbiddenError):
        await client.register(stream_id)  # refused over REST, where its alerts would resume from
    assert client.streams == []
    with pytest.raises(ValueError, match="may not send"):
        await client.send_frame(make_jpeg(), stream_id=stream_id)


async def test_invalid_alerts_are_refused_before_sending(
    relay: RelayHarness, clients: Callable[..., RelayClient]
) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    client = clients(token)
    await client.connect()
    await client.register(stream_id)
    with pytest.raises(ValueError, match="severity"):
        await client.send_alert("urgent", "x")
    with pytest.raises(ValueError, match="confidence"):
        await client.send_alert("low", "x", metadata={"confidence": 2})
    with pytest.raises(ValueError, match="location"):
        await client.send_alert("low", "x", metadata={"location": {"x": 320, "y": 10}})
    assert client.pending_alerts == 0


async def test_an_alert_the_relay_refuses_is_rejected_not_resent(
    relay: RelayHarness, clients: Callable[..., RelayClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    client = clients(token)
    await client.connect()
    await client.register(stream_id)

    async def refuse(_connection: object, alert: Any) -> None:
        raise ProtocolError("not-registered", "refused by the test", ref=alert.ref, stream_id=alert.stream_id)

    monkeypatch.setattr(relay.relay.router, "alert", refuse)
    ref = await client.send_alert("low", "x")
    with pytest.raises(AlertRejected) as rejected:
        await asyncio.wait_for(client.alert_stored(ref), GUARD)
    assert (rejected.value.code, rejected.value.ref) == ("not-registered", ref)
    assert client.pending_alerts == 0


async def test_only_the_newest_frame_waits_to_be_sent(relay: RelayHarness, clients: Callable[..., RelayClient]) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    phone, ml = clients(token), clients(token)
    await ml.connect()
    await ml.subscribe(stream_id, consumes=["video-frame"])
    await phone.connect()
    await phone.register(stream_id)

    # Three frames without yielding to the writer: the first two are replaced before they go out.
    for timestamp in (1, 2, 3):
        assert await phone.send_frame(make_jpeg(timestamp), timestamp=timestamp)
    assert phone.stats.frames_replaced == 2
    assert (await next_of(ml, Frame)).timestamp == 3
    assert await phone.send_frame(make_jpeg(4), timestamp=4)
    assert (await next_of(ml, Frame)).timestamp == 4, "nothing stale came in between"

    with pytest.raises(ValueError, match="none: register"):
        await ml.send_frame(make_jpeg())  # a consumer that may not produce frames
    await phone.close()
    with pytest.raises(ClientClosed):
        await phone.send_frame(make_jpeg())


async def test_relay_errors_nobody_waits_for_reach_the_application(database_url: str) -> None:
    async with running_relay(database_url, ping_interval=0, max_fps=1) as relay:
        _, token = await relay.user()
        stream_id = await relay.stream(token)
        async with RelayClient(relay.base, token, backoff=fast_backoff()) as phone:
            await phone.register(stream_id, consumes=[])

            async def camera() -> None:
                while True:
                    await phone.send_frame(make_jpeg())
                    await asyncio.sleep(0.05)  # a camera's pace, over the relay's limit of 1 fps

            filming = asyncio.create_task(camera())
            try:
                report = await next_of(phone, ErrorReport)
            finally:
                filming.cancel()
            assert (report.code, report.stream_id) == ("rate-limited", stream_id)


async def test_the_blocking_client_does_the_same_from_plain_code(relay: RelayHarness) -> None:
    await relay.user("bob", "pw")

    def script() -> tuple[str, Alert, list[str]]:
        client = BlockingRelayClient(relay.base, None, backoff=fast_backoff())
        try:
            client.login("bob", "pw", timeout=GUARD)
            client.connect(timeout=GUARD)
            stream_id = client.register_stream("notebook cam")
            client.register(stream_id, timeout=GUARD)
            client.subscribe(stream_id, consumes=["alert"], produces=["alert"], timeout=GUARD)
            with BlockingRelayClient(relay.base, client.token, backoff=fast_backoff()) as ml:
                ml.subscribe(stream_id, consumes=[], produces=["alert"], timeout=GUARD)
                ref = ml.send_alert("critical", "from a thread", stream_id=stream_id)
                ml.alert_stored(ref, timeout=GUARD)
            received = client.receive(timeout=GUARD)
            assert isinstance(received, Alert)
            return stream_id, received, [a.id for a in client.alerts(stream_ids=[stream_id], page_size=1)]
        finally:
            client.close()

    stream_id, alert, listed = await asyncio.to_thread(script)
    assert (alert.stream_id, alert.severity, alert.message) == (stream_id, "critical", "from a thread")
    assert listed == [alert.id]


async def test_messages_can_go_to_a_callback_instead(relay: RelayHarness, clients: Callable[..., RelayClient]) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    received: list[Message] = []
    arrived = asyncio.Event()

    def on_message(message: Message) -> None:
        received.append(message)
        arrived.set()

    dashboard, phone = clients(token, on_message=on_message), clients(token)
    await dashboard.subscribe(stream_id, consumes=["alert"])
    await phone.register(stream_id, consumes=[])
    ref = await phone.send_alert("low", "to the callback")
    await asyncio.wait_for(arrived.wait(), GUARD)
    assert [(type(m), getattr(m, "ref", None)) for m in received] == [(Alert, ref)]


async def test_the_blocking_client_works_where_an_event_loop_already_runs(relay: RelayHarness) -> None:
    """As in a Jupyter cell: plain blocking calls from code that runs inside a running event loop."""
    _, token = await relay.user()
    stream_id = await relay.stream(token)

    async def notebook_cell() -> list[str]:
        asyncio.get_running_loop()  # the kernel's loop runs here, as in Jupyter
        with BlockingRelayClient(relay.base, token, backoff=fast_backoff()) as client:
            client.register(stream_id, timeout=GUARD)
            ref = client.send_alert("medium", "from a notebook")
            client.alert_stored(ref, timeout=GUARD)
            return [alert.message for alert in client.alerts(stream_ids=[stream_id])]

    assert await asyncio.to_thread(asyncio.run, notebook_cell()) == ["from a notebook"]
