"""What the relay knows about one WebSocket connection.

A :class:`Connection` is the session's state that the router and the hub share:
who the user is, which streams this connection may produce for (with their
frame rate limits), which it registered as their producer, and its outbox.  It
has slots and small containers only, because a relay holds thousands of them.
"""

from __future__ import annotations

import itertools
from typing import Final

from relay.envelope import Envelope, websocket_frame
from relay.outbox import Outbox
from relay.protocol import ProtocolError, encode, error_message
from relay.ratelimit import TokenBucket

_ids = itertools.count(1)
MAX_OWNERSHIP_CACHE: Final = 1024


class Permit:
    """What one connection may produce for one stream, and its frame-rate budget."""

    __slots__ = ("frames", "types")

    def __init__(self, types: frozenset[str], max_fps: float) -> None:
        self.types = types
        self.frames = TokenBucket(max_fps, burst=max(1.0, max_fps))


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
        "owned",
        "peer",
        "permits",
        "registered",
        "replaying",
        "streaming",
        "subscriptions",
        "user_id",
        "warned",
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
        self.owned: dict[str, bool] = {}
        self.registered: set[str] = set()
        self.streaming: set[str] = set()
        self.subscriptions: dict[str, frozenset[str]] = {}
        self.replaying: dict[str, list[Envelope]] = {}
        self.alerts = TokenBucket(max_alerts_per_second, burst=max(1.0, 2 * max_alerts_per_second))
        self.warned: dict[str, float] = {}
        self.alive = True

    def send(self, message: dict[str, object]) -> None:
        """Send a control message (never dropped)."""
        self.outbox.send(websocket_frame(encode(message), binary=False))

    def send_error(self, error: ProtocolError) -> None:
        self.outbox.send(websocket_frame(error_message(error), binary=False))

    def remember_owner(self, stream_id: str, owned: bool) -> None:
        """Cache whether this connection's user owns ``stream_id`` (bounded)."""
        if len(self.owned) >= MAX_OWNERSHIP_CACHE:
            self.owned.clear()
        self.owned[stream_id] = owned

    def describe(self) -> str:
        """``user=… client=… streams=…`` for log lines."""
        streams = sorted(set(self.permits) | set(self.subscriptions))
        return f"user={self.user_id or '-'} client={self.client_type or '-'} streams={','.join(streams) or '-'}"
