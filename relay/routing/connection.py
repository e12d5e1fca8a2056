"""What the relay knows about one WebSocket connection.

A :class:`Connection` is the session's state that the router and the hub share:
who the user is, which streams this connection may produce for (with their
frame rate limits and whether it is their registered producer), and its outbox.  It
has slots and small containers only, because a relay holds thousands of them.

The outbox is a :class:`Sink`: whatever queues ready-made frames for the socket
(:class:`relay.tornado.outbox.Outbox`, or a recorder in a test), so that nothing
here knows about sockets.
"""

from __future__ import annotations

import itertools
from typing import Protocol

from relay.ratelimit import TokenBucket
from relay.wire import ProtocolError, encode, error_message
from relay.wire.envelope import Envelope
from relay.wire.frames import Wire, websocket_frame

_ids = itertools.count(1)


class Sink(Protocol):
    """Where a connection's messages go, in order (see :class:`relay.tornado.outbox.Outbox`)."""

    @property
    def closed(self) -> bool:
        """True once the connection is closing: later messages are ignored."""

    @property
    def frames_dropped(self) -> int:
        """Video frames dropped because the client did not keep up."""

    def send(self, wire: Wire) -> None:
        """Queue a message that must not be dropped (alerts, status, replies)."""

    def send_frame(self, envelope: Envelope, binary: bool) -> None:
        """Queue a video frame (in the binary form or not), which may give way to newer ones."""

    def close(self) -> None:
        """Forget what is queued; ignore what comes later."""


class Permit:
    """What one connection may produce for one stream, its frame-rate budget, and its role.

    ``producer`` is set on the connection that registered the stream (whose
    comings and goings are the stream's status); ``streaming`` once it sent a frame.
    """

    __slots__ = ("frames", "producer", "streaming", "types")

    def __init__(self, types: frozenset[str], max_fps: float) -> None:
        self.types = types
        self.frames = TokenBucket(max_fps, burst=max(1.0, max_fps))
        self.producer = False
        self.streaming = False


class Connection:
    """One client connection: identity, permissions, subscriptions and outbox.

    ``id`` is unique across relay nodes (``node_id`` + a counter), so that a
    node can tell that an alert it received through the broker came from one
    of its own connections.
    """

    __slots__ = (
        "alerts",
        "alerts_sent",
        "alive",
        "client_type",
        "id",
        "outbox",
        "peer",
        "permits",
        "quiet_until",
        "replaying",
        "subscriptions",
        "token_hash",
        "user_id",
    )

    def __init__(
        self,
        node_id: str,
        peer: str,
        outbox: Sink,
        *,
        max_alerts_per_second: float,
    ) -> None:
        self.id = f"{node_id}:{next(_ids)}"
        self.peer = peer
        self.user_id: str | None = None
        self.token_hash: str | None = None  # the bearer token it authenticated with: revoking it closes this
        self.client_type = ""
        self.outbox = outbox
        self.permits: dict[str, Permit] = {}
        self.subscriptions: dict[str, frozenset[str]] = {}
        self.replaying: dict[str, list[Envelope]] = {}
        self.alerts_sent: dict[str, int] = {}
        """Per stream, the number (``streamSeq``) of the last alert this connection was sent."""
        self.alerts = TokenBucket(max_alerts_per_second, burst=max(1.0, 2 * max_alerts_per_second))
        self.quiet_until = 0.0  # no rate-limit warning before this (monotonic) time
        self.alive = True

    def alert_is_new(self, stream_id: str, seq: int) -> bool:
        """Whether the alert ``seq`` of ``stream_id`` comes after every one this connection was sent (then it
        counts as sent).  A node's gap fill after a broker outage can bring alerts that a consumer which
        reconnected meanwhile has already replayed: they are not sent twice, nor out of order."""
        if seq and seq <= self.alerts_sent.get(stream_id, 0):
            return False
        self.alerts_sent[stream_id] = seq
        return True

    def send(self, message: dict[str, object]) -> None:
        """Send a control message (never dropped)."""
        self.outbox.send(websocket_frame(encode(message), binary=False))

    def send_error(self, error: ProtocolError) -> None:
        self.outbox.send(websocket_frame(error_message(error), binary=False))

    def describe(self) -> str:
        """``user=… client=… streams=…`` for log lines."""
        streams = sorted(set(self.permits) | set(self.subscriptions))
        return f"user={self.user_id or '-'} client={self.client_type or '-'} streams={','.join(streams) or '-'}"
