"""Live alerts on this node without a gap: what a broker outage lost is filled in from the database.

Every alert has its number in its stream (``streamSeq``: 1, 2, 3 …), and alerts
are stored before they are published, so a node can tell when it missed one and
fetch it.  :class:`AlertContinuity` stands between the broker and the hub: it
remembers, for every stream with alert consumers here, the number of the last
alert it delivered, and

* passes the next alert on as it comes;
* drops one it has already delivered (a late copy after a fill);
* on a jump (an alert published while Redis was unreachable, here or on its
  node, never arrived), holds the stream's live alerts back, reads the missing
  ones from the database, delivers them in order, then the held ones;
* after the broker reconnects (:meth:`catch_up`), reads what every such stream
  stored meanwhile, so consumers get it even if no later alert comes to reveal
  the gap.

Frames lost in an outage stay lost (they are stale anyway); status messages are
republished by the broker when it reconnects.  Consumers that resume with
``sinceAlertId`` are served by the router's replay; this covers the ones that
stayed connected.
"""

from __future__ import annotations

import asyncio
import logging

from relay.metrics import COUNTERS
from relay.representation import alert_message
from relay.routing.hub import Hub
from relay.store import Alerts, is_unavailable
from relay.wire import ALERT, encode
from relay.wire.envelope import Envelope

log = logging.getLogger("relay.continuity")

FILL_BATCH = 500


class AlertContinuity:
    """See the module docstring.  One per node; :meth:`deliver` is what the broker delivers to."""

    def __init__(self, hub: Hub, alerts: Alerts) -> None:
        self._hub = hub
        self._alerts = alerts
        self._last: dict[str, int] = {}  # stream id -> number of the last alert delivered here
        self._held: dict[str, list[Envelope]] = {}  # streams being filled -> live alerts waiting
        self._filling: set[asyncio.Task[None]] = set()

    def follows(self, stream_id: str) -> bool:
        return stream_id in self._last

    def following(self, stream_id: str, last_seq: int) -> None:
        """A stream got its first alert consumer here; its newest stored alert is number ``last_seq``."""
        self._last.setdefault(stream_id, last_seq)

    def forget(self, stream_id: str) -> None:
        """The stream has no consumer here any more."""
        self._last.pop(stream_id, None)

    def deliver(self, envelope: Envelope) -> None:
        if envelope.type != ALERT:
            self._hub.deliver(envelope)
            return
        stream_id, seq = envelope.stream_id, envelope.seq
        held = self._held.get(stream_id)
        if held is not None:
            held.append(envelope)
            return
        last = self._last.get(stream_id)
        if last is None or seq == last + 1:
            self._last[stream_id] = seq
            self._hub.deliver(envelope)
        elif seq > last:
            log.warning(
                "stream %s: alerts %d to %d did not arrive; reading them from the database",
                stream_id,
                last + 1,
                seq - 1,
            )
            self._fill(stream_id, last, [envelope])
        # else: delivered already (by a fill)

    def catch_up(self) -> None:
        """The broker is back: read what each followed stream stored while it was away."""
        for stream_id, last in list(self._last.items()):
            if stream_id not in self._held:
                self._fill(stream_id, last, [])

    def _fill(self, stream_id: str, after: int, held: list[Envelope]) -> None:
        self._held[stream_id] = held
        task = asyncio.ensure_future(self._read_missing(stream_id, after))
        self._filling.add(task)
        task.add_done_callback(self._filling.discard)

    async def _read_missing(self, stream_id: str, after: int) -> None:
        filled = 0
        failed = False
        try:
            while True:
                rows = await self._alerts.after(stream_id, after, limit=FILL_BATCH)
                for row in rows:
                    text = encode(alert_message(row))
                    self._hub.deliver(Envelope.for_message(ALERT, stream_id, text, seq=row.stream_seq))
                    after = row.stream_seq
                filled += len(rows)
                if len(rows) < FILL_BATCH:
                    break
        except Exception as error:
            failed = True
            COUNTERS.alerts_gap_unfilled += 1
            if is_unavailable(error):
                log.warning("could not fill the alerts of stream %s: the database is unreachable", stream_id)
            else:
                log.exception("could not fill the alerts of stream %s", stream_id)
        COUNTERS.alerts_gap_filled += filled
        if filled:
            log.info("stream %s: %d alerts filled in from the database", stream_id, filled)
        held = sorted(self._held.pop(stream_id, []), key=lambda waiting: waiting.seq)
        if stream_id in self._last:  # still followed (its consumers may have gone meanwhile)
            last = max(after, self._last[stream_id])
            if failed and held and held[0].seq > last + 1:
                last = held[0].seq - 1  # the gap stays: consumers that resume with sinceAlertId still get it
            self._last[stream_id] = last
        for envelope in held:
            self.deliver(envelope)
