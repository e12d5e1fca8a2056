"""What the relay knows about one WebSocket connection.

A :class:`Connection` is the session's state that the router and the hub share:
who the user is, which streams this connection may produce for (with their
frame rate limits and whether it is their registered producer), and its outbox.  It
has slots and small containers only, because a relay holds thousands of them.
"""

from __future__ import annotations

import itertools

from relay.envelope import Envelope, websocket_frame
from relay.outbox import Outbox
from relay.protocol import ProtocolError, encode, error_message
from relay.ratelimit import TokenBucket

_ids = itertools.count(1)


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
        "alive",
        "client_type",
        "id",
        "outbox",
        "peer",
        "permits",
        "quiet_until",
        "replaying",
        "subscriptions",
        "user_id",
    )

    def __init__(
        self,
        node_id: str,
        peer: str,
        outbox: Outbox,
        *,
        max_alerts_per_second: float,
    ) -> None:
        self.id = f"{node_id}:{next(_ids)}"
        self.peer = peer
        self.user_id: str | None = None
        self.client_type = ""
        self.outbox = outbox
        self.permits: dict[str, Permit] = {}
        self.subscriptions: dict[str, frozenset[str]] = {}
        self.replaying: dict[str, list[Envelope]] = {}
        self.alerts = TokenBucket(max_alerts_per_second, burst=max(1.0, 2 * max_alerts_per_second))
        self.quiet_until = 0.0  # no rate-limit warning before this (monotonic) time
        self.alive = True

    def send(self, message: dict[str, object]) -> None:
        """Send a control message (never dropped)."""
        self.outbox.send(websocket_frame(encode(message), binary=False))

    def send_error(self, error: ProtocolError) -> None:
        self.outbox.send(websocket_frame(error_message(error), binary=False))

    def describe(self) -> str:
        """``user=… client=… streams=…`` for log lines."""
        streams = sorted(set(self.permits) | set(self.subscriptions))
        return f"user={self.user_id or '-'} client={self.client_type or '-'} streams={','.join(streams) or '-'}"
