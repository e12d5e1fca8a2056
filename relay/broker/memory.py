"""The in-process broker: one relay node, delivery by a plain function call."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from relay.broker.base import Deliver
from relay.wire.envelope import Envelope


class MemoryBroker:
    """Delivers each envelope straight to the local hub, synchronously."""

    backlog = 0

    def __init__(self) -> None:
        self.publish: Deliver = _undelivered
        """Publishing is delivering: once started, ``publish`` is the ``deliver`` it was started with, not
        a method that calls it (a call less per frame: ``benchmarks/RESULTS.md``, issue 12)."""

    async def start(self, deliver: Deliver, on_reconnect: Callable[[], None] | None = None) -> None:
        """Deliver from now on; there is no connection to lose, so ``on_reconnect`` is never called."""
        self.publish = deliver

    def interest(self, stream_id: str, interested: bool, *, frames: bool) -> None:
        """Every stream is local here: nothing to subscribe to."""

    async def listening(self, stream_id: str) -> None:
        """Always listening: publishing is delivering."""

    async def nodes_alive(self, node_ids: Sequence[str]) -> dict[str, bool] | None:
        """One node only: nothing to tell about others."""
        return None

    async def close(self) -> None:
        self.publish = _undelivered


def _undelivered(envelope: Envelope) -> None:
    """What is published before the broker starts or after it closes: delivered nowhere."""
