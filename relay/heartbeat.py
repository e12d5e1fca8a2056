"""Pings every connection on one timer and cuts off those that stopped answering.

Tornado can ping per connection, but that is one sleeping Task per socket; with
thousands of idle phones one periodic callback for all of them is cheaper.
Every ``interval`` seconds each connection that answered the previous ping gets
a new one; a connection that did not answer is a dead peer (a phone that lost
its network without closing its socket) and is terminated, so its stream goes
``offline`` within two intervals.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from tornado.ioloop import PeriodicCallback


class Pingable(Protocol):
    """What the heartbeat needs of a session."""

    @property
    def conn(self) -> _Liveness | None: ...

    def ping(self, data: bytes = b"") -> None: ...

    def terminate(self, code: int, reason: str, *, abort: bool = False) -> None: ...


class _Liveness(Protocol):
    alive: bool


GOING_AWAY = 1001


class Heartbeat:
    """Pings the sessions of ``sessions`` (a live view: sessions add and remove themselves)."""

    def __init__(self, interval: float, sessions: Collection[Pingable]) -> None:
        self.interval = interval
        self._sessions = sessions
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
        """Terminate sessions that missed the last pong; ping the others."""
        for session in list(self._sessions):
            liveness = session.conn
            if liveness is None:
                continue
            if not liveness.alive:
                session.terminate(GOING_AWAY, "ping timed out", abort=True)
                continue
            liveness.alive = False
            try:
                session.ping()
            except Exception:  # closed underneath us: its close handler unregisters it
                continue
