"""Who is connected to this relay node, and delivery to them.

For each stream, its producer (the connection that registered it) and its
consumers per message type, each with the frame form it asked for.
:meth:`Hub.deliver` puts an :class:`~relay.wire.envelope.Envelope` into the
outboxes of the right consumers; the envelope builds its bytes once per form,
so ten JSON consumers and ten binary consumers cost two encodings, not twenty.

The hub knows nothing of the database, permissions or other nodes: the router
decides what may happen, the broker brings messages from every node here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType

from relay.metrics import COUNTERS
from relay.routing.connection import Connection, Sink
from relay.routing.recent_frames import RecentFrames
from relay.wire import ALERT, ALERT_UPDATED, VIDEO_FRAME
from relay.wire.envelope import Envelope

_EMPTY: Mapping[Connection, bool] = MappingProxyType({})

FrameTargets = tuple[tuple[bool, tuple[Sink, ...]], ...]
"""A stream's frame consumers' outboxes by the form they want: (wants binary, outboxes), a group per form.

Grouped, not a pair per consumer: the fan-out then picks a frame's bytes once per
group instead of testing the form per consumer (``benchmarks/RESULTS.md``, issue 12).
"""

FanOut = Callable[[Envelope, FrameTargets], None]
"""Queues a frame for each outbox of its stream's frame targets, in the form of its group."""


def send_each(envelope: Envelope, targets: FrameTargets) -> None:
    """The plain :data:`FanOut`: :meth:`Sink.send_frame` on each, for any kind of outbox."""
    for binary, sinks in targets:
        for sink in sinks:
            sink.send_frame(envelope, binary)


class Hub:
    """Producers and consumers per stream on this node; see the module docstring.

    ``on_interest(stream_id, frames, interested)`` is told when a stream gets
    its first local consumer (``interested`` True) or loses its last one, of its
    video frames (``frames`` True) and of everything else (alerts, status,
    reviews) apart, so a broker can listen only to what someone here wants: a
    phone wants its stream's alerts, not its own frames back.

    ``fan_out`` queues a frame for all of a stream's frame consumers at once
    (:func:`relay.tornado.outbox.fan_out` for the relay's own outboxes, which
    saves a call per consumer and frame); they are kept per stream as its
    :data:`FrameTargets`, rebuilt when they change rather than walked out of
    the registry per frame.
    """

    def __init__(
        self,
        on_interest: Callable[[str, bool, bool], None] | None = None,
        *,
        frames: RecentFrames | None = None,
        fan_out: FanOut = send_each,
    ) -> None:
        # stream id -> message type -> consumer -> wants binary frames
        self._consumers: dict[str, dict[str, dict[Connection, bool]]] = {}
        # stream id -> how many frame consumers it has, and their outboxes by form
        self._frame_targets: dict[str, tuple[int, FrameTargets]] = {}
        self._fan_out = fan_out
        self._producers: dict[str, Connection] = {}
        self._on_interest = on_interest
        self.frames = frames if frames is not None else RecentFrames(max_frames=0, max_bytes=0)
        """The newest frames of each stream that passes here (for snapshots)."""

    # ------------------------------------------------------------------ registry

    def register_producer(self, stream_id: str, connection: Connection) -> Connection | None:
        """Make ``connection`` the producer of ``stream_id``; returns the one it replaces."""
        previous = self._producers.get(stream_id)
        self._producers[stream_id] = connection
        return previous if previous is not connection else None

    def register_consumer(
        self, stream_id: str, connection: Connection, consumes: Iterable[str], *, binary: bool = False
    ) -> None:
        """Subscribe ``connection`` to these message types of ``stream_id`` (replacing earlier ones)."""
        self._drop_consumer(stream_id, connection)
        types = list(consumes)
        if not types:
            return
        by_type = self._consumers.get(stream_id)
        if by_type is None:
            by_type = self._consumers[stream_id] = {}
        before = _wants(by_type)
        for message_type in types:
            by_type.setdefault(message_type, {})[connection] = binary
        self._retarget(stream_id, by_type)
        self._tell(stream_id, before, _wants(by_type))

    def unregister(self, stream_id: str, connection: Connection) -> bool:
        """Remove ``connection`` from ``stream_id``; True if it was the stream's producer."""
        self._drop_consumer(stream_id, connection)
        if self._producers.get(stream_id) is connection:
            del self._producers[stream_id]
            return True
        return False

    def remove_connection(self, connection: Connection, stream_ids: Iterable[str]) -> list[str]:
        """Forget ``connection`` on these streams; returns those it was the producer of."""
        return [stream_id for stream_id in stream_ids if self.unregister(stream_id, connection)]

    def get_consumers(self, stream_id: str, message_type: str) -> Mapping[Connection, bool]:
        """The consumers of one message type of a stream, each with whether it wants binary."""
        by_type = self._consumers.get(stream_id)
        if by_type is None:
            return _EMPTY
        return by_type.get(message_type, _EMPTY)

    def get_producer(self, stream_id: str) -> Connection | None:
        return self._producers.get(stream_id)

    def has_consumers(self, stream_id: str) -> bool:
        return stream_id in self._consumers

    def _drop_consumer(self, stream_id: str, connection: Connection) -> None:
        by_type = self._consumers.get(stream_id)
        if by_type is None:
            return
        before = _wants(by_type)
        for message_type in list(by_type):
            consumers = by_type[message_type]
            consumers.pop(connection, None)
            if not consumers:
                del by_type[message_type]
        if not by_type:
            del self._consumers[stream_id]
        self._retarget(stream_id, by_type)
        self._tell(stream_id, before, _wants(by_type))

    def _retarget(self, stream_id: str, by_type: Mapping[str, Mapping[Connection, bool]]) -> None:
        """Rebuild the stream's frame targets from its registry, each group in the registry's order."""
        consumers = by_type.get(VIDEO_FRAME)
        if consumers:
            groups = (
                (binary, tuple(connection.outbox for connection, wants in consumers.items() if wants == binary))
                for binary in (True, False)
            )
            self._frame_targets[stream_id] = (len(consumers), tuple(group for group in groups if group[1]))
        else:
            self._frame_targets.pop(stream_id, None)

    def _tell(self, stream_id: str, before: tuple[bool, bool], after: tuple[bool, bool]) -> None:
        """Tell ``on_interest`` what changed of (frames wanted, other messages wanted)."""
        if self._on_interest is None:
            return
        for frames, was, now in zip((True, False), before, after, strict=True):
            if was != now:
                self._on_interest(stream_id, frames, now)

    # ------------------------------------------------------------------ delivery

    def deliver(self, envelope: Envelope) -> None:
        """Hand ``envelope`` to the outbox of every local consumer of its stream and type.

        Frames go to the dropping frame queue, everything else to the queue that
        never drops.  An alert is not sent back to the connection
        it came from, and is held back for a consumer still replaying stored alerts
        of that stream (see :class:`relay.routing.router.Router`); one that a
        connection already had (a gap fill after a broker outage, of alerts it
        replayed when it reconnected meanwhile) is not sent to it again.
        """
        if envelope.frame is not None:
            self.frames.remember(envelope.frame)
            targets = self._frame_targets.get(envelope.stream_id)  # (only video frames carry a frame)
            if targets is not None:
                COUNTERS.frames_delivered += targets[0]
                self._fan_out(envelope, targets[1])
            return
        by_type = self._consumers.get(envelope.stream_id)
        if by_type is None:
            return
        consumers = by_type.get(ALERT if envelope.type == ALERT_UPDATED else envelope.type)
        if not consumers:
            return
        origin = envelope.origin
        is_alert = envelope.type == ALERT
        for connection in consumers:
            if connection.id == origin:
                continue
            held = connection.replaying.get(envelope.stream_id) if connection.replaying else None
            if held is not None:
                held.append(envelope)
            elif not is_alert or connection.alert_is_new(envelope.stream_id, envelope.seq):
                connection.outbox.send(envelope.wire())


def _wants(by_type: Mapping[str, object]) -> tuple[bool, bool]:
    """Whether a stream's local consumers want its frames, and whether they want anything else."""
    return VIDEO_FRAME in by_type, len(by_type) > (VIDEO_FRAME in by_type)
