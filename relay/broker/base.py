"""The broker seam: how a message published on one node reaches every node's hub.

The router calls :meth:`Broker.publish` and never learns whether the consumers
are in this process or behind Redis.  A broker delivers to its node's hub through
the ``deliver`` callable it is started with, and is told by the hub which streams
have local consumers (:meth:`Broker.interest`), so it need not carry the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from relay.wire.envelope import Envelope

Deliver = Callable[[Envelope], None]


class Broker(Protocol):
    @property
    def backlog(self) -> int:
        """Messages waiting to be sent on to the other nodes (0 for the in-process broker)."""

    async def start(self, deliver: Deliver, on_reconnect: Callable[[], None] | None = None) -> None:
        """Begin delivering published envelopes to ``deliver``.

        ``on_reconnect`` is called when messages flow again after the broker lost
        its connection (some may have been lost meanwhile).
        """

    def publish(self, envelope: Envelope) -> None:
        """Send ``envelope`` to the consumers of its stream on every node.

        Never blocks and never raises for delivery problems: frames are
        best-effort, and alerts are already in the database when they are
        published, so a consumer that misses one live can replay it.
        """

    def interest(self, stream_id: str, interested: bool, *, frames: bool) -> None:
        """This node gained (True) or lost (False) its local consumers of ``stream_id``'s frames
        (``frames``), or of its other messages."""

    async def listening(self, stream_id: str) -> None:
        """Return once messages of ``stream_id`` published on any node reach this node.

        The router awaits this before it answers ``subscribed``, so a client that
        has its ``subscribed`` misses nothing published after it.
        """

    async def nodes_alive(self, node_ids: Sequence[str]) -> dict[str, bool] | None:
        """Which of these relay nodes are alive; None if the broker cannot tell now.

        The in-process broker knows no other node (and is never asked); the
        Redis broker reads the keys that each node renews.
        """

    async def close(self) -> None:
        """Stop delivering and release connections."""
