"""Alerts sent and not yet confirmed by the relay, resent until they are.

An alert is stored by the relay once per ``(stream, ref)``: sending it again
with the same ``ref`` is only confirmed again (``alert-stored`` with the same
id).  So the client keeps every alert here from the moment the application
hands it over until its ``alert-stored`` arrives, and resends it after every
reconnect and whenever it has waited ``resend_after`` seconds.  Nothing is
dropped silently: the queue is bounded, and a full queue refuses the *new*
alert with :class:`~relay.client.errors.AlertQueueFull`, which the caller sees.

The queue itself needs no event loop, so the client's sans-I/O state
(:mod:`relay.client.state`) can keep it: an alert's future, which whoever waits
for its id awaits, is made the first time someone asks for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from relay.client.errors import AlertQueueFull, AlertRejected, RelayError


@dataclass(slots=True)
class PendingAlert:
    """One alert waiting for ``alert-stored``: its wire form, its sends, and who waits for its id."""

    ref: str
    stream_id: str
    wire: str
    sent_at: float | None = None
    sends: int = 0
    outcome: str | RelayError | None = None
    """The id the relay stored it under, or why it never will be; None while it waits."""
    _stored: asyncio.Future[str] | None = field(default=None, repr=False)

    @property
    def stored(self) -> asyncio.Future[str]:
        """The alert's id once stored (or the error that settled it); made on first use, in the running loop."""
        if self._stored is None:
            self._stored = asyncio.get_running_loop().create_future()
            self._stored.add_done_callback(_consume_exception)
            if self.outcome is not None:
                _settle(self._stored, self.outcome)
        return self._stored

    def settle(self, outcome: str | RelayError) -> None:
        """It was stored (``outcome`` is its id) or never will be (the error); the first outcome stands."""
        if self.outcome is not None:
            return
        self.outcome = outcome
        if self._stored is not None and not self._stored.done():
            _settle(self._stored, outcome)


class PendingAlerts:
    """Unconfirmed alerts by ``ref``, in the order they were given; see the module docstring."""

    def __init__(self, limit: int = 1000) -> None:
        if limit < 1:
            raise ValueError("the pending alert limit must be at least 1")
        self.limit = limit
        self._by_ref: dict[str, PendingAlert] = {}

    def __len__(self) -> int:
        return len(self._by_ref)

    def __contains__(self, ref: object) -> bool:
        return ref in self._by_ref

    def __iter__(self) -> Iterator[PendingAlert]:
        return iter(list(self._by_ref.values()))

    def add(self, ref: str, stream_id: str, wire: str) -> PendingAlert:
        """Queue an alert; AlertQueueFull if ``limit`` alerts already wait (this one is not queued)."""
        existing = self._by_ref.get(ref)
        if existing is not None:
            return existing
        if len(self._by_ref) >= self.limit:
            raise AlertQueueFull(
                f"{len(self._by_ref)} alerts are waiting for the relay's confirmation; "
                "this one was not queued (is the relay reachable?)",
                stream_id=stream_id,
                ref=ref,
            )
        pending = PendingAlert(ref, stream_id, wire)
        self._by_ref[ref] = pending
        return pending

    def future(self, ref: str) -> asyncio.Future[str] | None:
        pending = self._by_ref.get(ref)
        return pending.stored if pending is not None else None

    def mark_sent(self, pending: PendingAlert) -> None:
        pending.sent_at = time.monotonic()
        pending.sends += 1

    def due(self, resend_after: float) -> list[PendingAlert]:
        """Alerts never sent, or sent at least ``resend_after`` seconds ago."""
        now = time.monotonic()
        return [p for p in self._by_ref.values() if p.sent_at is None or now - p.sent_at >= resend_after]

    def confirm(self, ref: str, alert_id: str) -> PendingAlert | None:
        """``alert-stored`` arrived: the alert leaves the queue and its waiters get the id."""
        pending = self._by_ref.pop(ref, None)
        if pending is not None:
            pending.settle(alert_id)
        return pending

    def reject(self, ref: str, code: str, message: str) -> PendingAlert | None:
        """The relay refused the alert for good: it leaves the queue, waiters get AlertRejected."""
        pending = self._by_ref.pop(ref, None)
        if pending is not None:
            pending.settle(
                AlertRejected(
                    f"alert {ref} rejected: {code}: {message}", code=code, stream_id=pending.stream_id, ref=ref
                )
            )
        return pending

    def fail_all(self, error: RelayError) -> list[PendingAlert]:
        """The client stops (closed, or its token refused): every waiter gets ``error``."""
        failed = list(self._by_ref.values())
        self._by_ref.clear()
        for pending in failed:
            pending.settle(error)
        return failed

    async def drained(self) -> None:
        """Return once no alert waits (each stored or rejected)."""
        while self._by_ref:
            waiting = [p.stored for p in self._by_ref.values()]
            await asyncio.wait(waiting)


def _settle(future: asyncio.Future[str], outcome: str | RelayError) -> None:
    if isinstance(outcome, RelayError):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _consume_exception(future: asyncio.Future[Any]) -> None:
    """Mark a failed future's exception as seen: nobody has to await every alert's id."""
    if not future.cancelled():
        future.exception()
