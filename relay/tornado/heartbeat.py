"""Pings every connection on one timer and cuts off those that stopped answering.

A timer per connection would be one sleeping Task per socket; with thousands of
idle phones one periodic callback for all of them is cheaper.  Every
``interval`` seconds each connection that answered the previous ping gets a new
one; a connection that did not answer is a dead peer (a phone that lost its
network without closing its socket) and is terminated, so its stream goes
``offline`` within two intervals.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from tornado.ioloop import PeriodicCallback

from relay.wire import CloseCode


class Pingable(Protocol):
    """What the heartbeat needs of a connection (:class:`~relay.tornado.connection.WebSocketConnection`)."""

    @property
    def connection(self) -> _Liveness: ...

    def ping(self) -> None: ...

    def terminate(self, code: int, reason: str, *, abort: bool = False) -> None: ...


class _Liveness(Protocol):
    alive: bool


class Heartbeat:
    """Pings the connections of ``connections`` (a live view: connections add and remove themselves)."""

    def __init__(self, interval: float, connections: Collection[Pingable]) -> None:
        self.interval = interval
        self._connections = connections
        self._timer: PeriodicCallback | None = None

    def start(self) -> None:
        if self.interval > 0:
            self._timer = PeriodicCallback(self.beat, self.interval * 1000)
            self._timer.start()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None

    def beat(self) -> None:
        """Terminate connections that missed the last pong; ping the others."""
        for pingable in list(self._connections):
            liveness = pingable.connection
            if not liveness.alive:
                pingable.terminate(CloseCode.GOING_AWAY, "ping timed out", abort=True)
                continue
            liveness.alive = False
            pingable.ping()
