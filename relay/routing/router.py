"""The rules: who may produce and consume what, and what each message does.

The session parses a client's message and hands it here with the client's
:class:`~relay.routing.connection.Connection`.  The router checks permissions against
the store (cached per connection, so the frame path never waits for the
database), keeps the hub's registry up to date, stores alerts before anything
else sees them, records status changes, and publishes through the broker.

Frames take a synchronous path end to end: parse, a dict lookup for the
permission, a token bucket, ``broker.publish``.  Only the first frame of a
connection for a stream it has not been cleared for goes to the database.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Iterable

from relay.broker import Broker
from relay.config import Settings
from relay.hooks import Hooks
from relay.metrics import COUNTERS, LATENCY_SAMPLE
from relay.representation import alert_json, alert_message, alert_updated_message, status_message
from relay.routing.announcements import STREAM_DELETED
from relay.routing.connection import Connection, Permit
from relay.routing.continuity import AlertContinuity
from relay.routing.hub import Hub
from relay.routing.owners import StreamOwners
from relay.routing.status import StatusTracker
from relay.store import Snapshot, Store, UnknownStream
from relay.store.models import Alert
from relay.wire import (
    ALERT,
    ALERT_UPDATED,
    PRODUCIBLE,
    STREAM_STATUS,
    VIDEO_FRAME,
    AlertIn,
    ProtocolError,
    Register,
    Subscribe,
    Unsubscribe,
    VideoFrame,
    encode,
)
from relay.wire.envelope import Envelope, frame_envelope

log = logging.getLogger("relay.router")


class Router:
    """See the module docstring.  One per relay node."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        hub: Hub,
        broker: Broker,
        status: StatusTracker,
        hooks: Hooks,
        continuity: AlertContinuity,
    ) -> None:
        self.settings = settings
        self.store = store
        self.hub = hub
        self.broker = broker
        self.status = status
        self.hooks = hooks
        self.continuity = continuity
        self.owners = StreamOwners(store.streams)

    # ------------------------------------------------------------------ ownership

    async def owns(self, connection: Connection, stream_id: str) -> bool:
        """Whether the connection's user owns ``stream_id`` (remembered per node)."""
        return await self.owners.owns(stream_id, connection.user_id)

    # ------------------------------------------------------------------ register / subscribe

    async def register(self, connection: Connection, message: Register) -> None:
        """A producer claims its stream: it may now send its frames and alerts.

        With ``sinceAlertId`` the stream's stored alerts after that one come
        after ``registered`` and before live ones, as for :meth:`subscribe`.

        The contract lets a registered connection produce both, whatever its
        ``produces`` lists; ``produces`` narrows nothing for a producer.
        """
        stream_id = message.stream_id
        if not await self.owns(connection, stream_id):
            raise _forbidden(stream_id)
        replay_after = await self._replay_start(connection, stream_id, message.since_alert_id, message.consumes)
        if _gone(connection):  # gone while it waited: nothing to register, nobody to clean up after it
            connection.replaying.pop(stream_id, None)
            return
        try:
            connection.client_type = message.client_type
            permit = self._grant(connection, stream_id, PRODUCIBLE)
            self.hub.register_consumer(stream_id, connection, message.consumes)
            connection.subscriptions[stream_id] = message.consumes
            await self.broker.listening(stream_id)
            if ALERT in message.consumes and not self.continuity.follows(stream_id):
                await self._follow_alerts(stream_id)
            if _gone(connection):  # gone meanwhile, and cleaned up after: not the producer now
                return
            previous = self.hub.register_producer(stream_id, connection)
            if previous is not None:
                replaced = previous.permits.get(stream_id)
                if replaced is not None:
                    replaced.producer = replaced.streaming = False
                log.info("stream %s: producer %s replaced by %s", stream_id, previous.id, connection.id)
            permit.producer, permit.streaming = True, False
            connection.send({"type": "registered", "streamId": stream_id})
            self.status.set(stream_id, "online")
            log.info("register %s stream=%s peer=%s", connection.describe(), stream_id, connection.peer)
        except BaseException:
            connection.replaying.pop(stream_id, None)
            raise
        if replay_after is not None:
            await self._replay(connection, stream_id, replay_after)

    async def subscribe(self, connection: Connection, message: Subscribe) -> None:
        """A consumer attaches; stored alerts after ``sinceAlertId`` come before live ones.

        Live alerts that arrive while the replay runs are held back on the
        connection and sent after it, minus those the replay already sent, so
        the consumer sees every alert once, in storage order.
        """
        stream_id = message.stream_id
        if not await self.owns(connection, stream_id):
            raise _forbidden(stream_id)
        replay_after = await self._replay_start(connection, stream_id, message.since_alert_id, message.consumes)
        if _gone(connection):  # gone while it waited: nothing to subscribe, nobody to clean up after it
            connection.replaying.pop(stream_id, None)
            return
        connection.client_type = message.client_type
        try:
            binary = message.frame_format == "binary"
            self.hub.register_consumer(stream_id, connection, message.consumes, binary=binary)
            connection.subscriptions[stream_id] = message.consumes
            if message.produces:
                self._grant(connection, stream_id, message.produces)
            await self.broker.listening(stream_id)
            connection.send({"type": "subscribed", "streamId": stream_id})
            log.info("subscribe %s stream=%s peer=%s", connection.describe(), stream_id, connection.peer)
            follow = ALERT in message.consumes and not self.continuity.follows(stream_id)
            if STREAM_STATUS in message.consumes or follow:
                stream = await self.store.streams.get(stream_id)
                if stream is not None and follow:
                    self.continuity.following(stream_id, stream.last_alert_seq)
                if stream is not None and STREAM_STATUS in message.consumes:
                    connection.send(status_message(stream_id, stream.status, stream.last_seen))
        except BaseException:
            connection.replaying.pop(stream_id, None)
            raise
        if replay_after is not None:
            await self._replay(connection, stream_id, replay_after)

    async def _replay_start(
        self, connection: Connection, stream_id: str, since_alert_id: str | None, consumes: frozenset[str]
    ) -> int | None:
        """Where a replay of ``sinceAlertId`` starts (None: no replay); from now on live alerts are held back.

        ``register`` and ``subscribe`` share it, so both replay alike.
        """
        if since_alert_id is None or ALERT not in consumes:
            connection.alerts_sent.pop(stream_id, None)
            return None
        replay_after = await self.store.alerts.stream_seq_of(stream_id, since_alert_id)
        if replay_after is None:
            raise ProtocolError(
                "invalid-message",
                f"sinceAlertId {since_alert_id} is not an alert of stream {stream_id}",
                stream_id=stream_id,
            )
        connection.replaying[stream_id] = []
        connection.alerts_sent[stream_id] = replay_after
        return replay_after

    async def _follow_alerts(self, stream_id: str) -> None:
        """Tell the node's continuity where the stream's alerts stand, as it gets its first consumer here."""
        stream = await self.store.streams.get(stream_id)
        if stream is not None:
            self.continuity.following(stream_id, stream.last_alert_seq)

    async def _replay(self, connection: Connection, stream_id: str, after: int) -> None:
        batch = self.settings.replay_batch
        try:
            while True:
                alerts = await self.store.alerts.after(stream_id, after, limit=batch)
                for alert in alerts:
                    connection.send(alert_message(alert))
                COUNTERS.alerts_replayed += len(alerts)
                if alerts:
                    after = alerts[-1].stream_seq
                if len(alerts) < batch:
                    break
        finally:
            held = connection.replaying.pop(stream_id, [])
        connection.alerts_sent[stream_id] = max(after, connection.alerts_sent.get(stream_id, 0))
        for envelope in held:
            if envelope.type != ALERT or connection.alert_is_new(stream_id, envelope.seq):  # replayed: not twice
                connection.outbox.send(envelope.wire())

    def unsubscribe(self, connection: Connection, message: Unsubscribe) -> None:
        """Detach from a stream entirely: consuming, producing and the producer role."""
        stream_id = message.stream_id
        connection.permits.pop(stream_id, None)
        connection.subscriptions.pop(stream_id, None)
        connection.replaying.pop(stream_id, None)
        connection.alerts_sent.pop(stream_id, None)
        if self.hub.unregister(stream_id, connection):
            self.status.set(stream_id, "offline")
        connection.send({"type": "unsubscribed", "streamId": stream_id})

    def stream_deleted(self, stream_id: str, connections: Iterable[Connection]) -> None:
        """The stream is gone (deleted on any node): its producer's and consumers' part in it ends here.

        Each local connection that registered it, consumed it or may produce
        for it is told ``stream-deleted`` and stays open; from now on the
        stream is no stream for this node's permission checks, so frames and
        alerts for it are ``forbidden``.  Its status is not written: there is
        no row left to write it to.
        """
        self.owners.forget(stream_id)
        self.continuity.forget(stream_id)
        self.hub.frames.forget(stream_id)  # no alert will ask for its snapshot now
        for connection in connections:
            if stream_id not in connection.permits and stream_id not in connection.subscriptions:
                continue
            log.info("stream %s deleted: telling %s", stream_id, connection.describe())
            connection.permits.pop(stream_id, None)
            connection.subscriptions.pop(stream_id, None)
            connection.replaying.pop(stream_id, None)
            connection.alerts_sent.pop(stream_id, None)
            self.hub.unregister(stream_id, connection)
            connection.send({"type": STREAM_DELETED, "streamId": stream_id})

    def disconnect(self, connection: Connection) -> None:
        """Clean up after a closed connection; its streams go offline."""
        connection.outbox.close()
        streams = set(connection.permits) | set(connection.subscriptions)
        for stream_id in self.hub.remove_connection(connection, streams):
            self.status.set(stream_id, "offline")
        connection.permits.clear()
        connection.subscriptions.clear()
        connection.replaying.clear()
        connection.alerts_sent.clear()

    def _grant(self, connection: Connection, stream_id: str, produces: frozenset[str]) -> Permit:
        permit = connection.permits.get(stream_id)
        if permit is None:
            permit = connection.permits[stream_id] = Permit(produces, self.settings.max_fps)
        else:
            permit.types = permit.types | produces
        return permit

    # ------------------------------------------------------------------ frames

    def frame(self, connection: Connection, frame: VideoFrame) -> Awaitable[None] | None:
        """Route a video frame; synchronous unless this stream needs a permission lookup."""
        stream_id = frame.stream_id
        permit = connection.permits.get(stream_id)
        if permit is None or VIDEO_FRAME not in permit.types:
            return self._refuse(connection, stream_id, VIDEO_FRAME)
        if not permit.frames.allow():
            self._rate_limited(connection, stream_id)
            return None
        COUNTERS.frames_received += 1
        if permit.producer and not permit.streaming:
            permit.streaming = True
            self.status.set(stream_id, "streaming")
        envelope = frame_envelope(frame, connection.id)
        if not COUNTERS.frames_received % LATENCY_SAMPLE:
            envelope.arrived = time.perf_counter()
        self.broker.publish(envelope)
        return None

    # ------------------------------------------------------------------ alerts

    async def alert(self, connection: Connection, alert: AlertIn) -> None:
        """Store an alert, confirm it to its sender, then send it to the stream's consumers."""
        permit = connection.permits.get(alert.stream_id)
        if permit is None or ALERT not in permit.types:
            refusal = self._refuse(connection, alert.stream_id, ALERT, ref=alert.ref)
            if refusal is not None:
                await refusal
            return
        if not connection.alerts.allow():
            raise ProtocolError(
                "rate-limited",
                f"more than {self.settings.max_alerts_per_second:g} alerts per second",
                ref=alert.ref,
                stream_id=alert.stream_id,
            )
        try:
            stored = await self.store.alerts.add(alert, snapshot=self._snapshot(alert))
        except UnknownStream:
            raise ProtocolError(
                "forbidden", f"stream {alert.stream_id} does not exist", ref=alert.ref, stream_id=alert.stream_id
            ) from None
        row = stored.alert
        connection.send({"type": "alert-stored", "id": row.id, "ref": row.ref, "streamId": row.stream_id})
        if stored.created:
            COUNTERS.alerts_stored += 1
            body = alert_json(row)
            text = encode({"type": ALERT, **body})
            envelope = Envelope.for_message(ALERT, row.stream_id, text, origin=connection.id, seq=row.stream_seq)
            self.broker.publish(envelope)
            self.hooks.alert_stored(body)

    def _snapshot(self, alert: AlertIn) -> Snapshot | None:
        """The frame the alert names (or the stream's newest), if this node still holds it and it is not too big."""
        frame = self.hub.frames.find(alert.stream_id, alert.frame_timestamp)
        if frame is None or frame.size > self.settings.max_snapshot_bytes:
            return None
        return Snapshot(bytes(frame.jpeg), frame.timestamp)

    def announce_reviews(self, alerts: Iterable[Alert]) -> None:
        """Tell each alert's stream's alert consumers, on every node, that its review changed."""
        for alert in alerts:
            text = encode(alert_updated_message(alert))
            self.broker.publish(Envelope.for_message(ALERT_UPDATED, alert.stream_id, text))

    # ------------------------------------------------------------------ refusals

    def _refuse(
        self, connection: Connection, stream_id: str, kind: str, *, ref: str | None = None
    ) -> Awaitable[None] | None:
        """Answer ``forbidden`` or ``not-registered``; looks ownership up only if not cached."""
        owned = self.owners.known(stream_id, connection.user_id)
        if owned is None:
            return self._refuse_after_lookup(connection, stream_id, kind, ref)
        connection.send_error(_refusal(stream_id, kind, owned, ref))
        return None

    async def _refuse_after_lookup(self, connection: Connection, stream_id: str, kind: str, ref: str | None) -> None:
        owned = await self.owns(connection, stream_id)
        connection.send_error(_refusal(stream_id, kind, owned, ref))

    def _rate_limited(self, connection: Connection, stream_id: str) -> None:
        """Tell the client its frames are over the limit, at most once a second."""
        COUNTERS.frames_rate_limited += 1
        now = time.monotonic()
        if connection.quiet_until > now:
            return
        connection.quiet_until = now + 1.0
        connection.send_error(
            ProtocolError(
                "rate-limited",
                f"more than {self.settings.max_fps:g} frames per second for this stream; extra frames are dropped",
                stream_id=stream_id,
            )
        )


def _forbidden(stream_id: str) -> ProtocolError:
    return ProtocolError("forbidden", f"stream {stream_id} does not exist or is not yours", stream_id=stream_id)


def _refusal(stream_id: str, kind: str, owned: bool, ref: str | None) -> ProtocolError:
    if not owned:
        error = _forbidden(stream_id)
        error.ref = ref
        return error
    return ProtocolError(
        "not-registered",
        f"this connection may not send {kind} for stream {stream_id}: register it or subscribe with produces",
        stream_id=stream_id,
        ref=ref,
    )


def _gone(connection: Connection) -> bool:
    """Whether the connection closed (and was or will be cleaned up after) while one of its messages waited.

    A call rather than the attribute where it is asked again after an ``await``, which mypy would take
    for unchanged."""
    return connection.outbox.closed
