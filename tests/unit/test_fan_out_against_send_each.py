"""The relay's fan-out (frames kept in the flusher until the end of the turn) against the plain one.

Random operations within and across turns of the loop -- frames, alerts, replies,
consumers backing up, draining, closing, unsubscribing, subscribing again in the
other form -- done once on a hub with :func:`relay.tornado.outbox.fan_out` and
once on one with :func:`relay.routing.hub.send_each` (each frame queued in each
outbox as it comes): every consumer must get the same bytes in the same order.
The one difference allowed: fewer frames counted as dropped, for a consumer
closed in the turn (the fan-out never queued them, so never dropped them).
"""

from __future__ import annotations

import asyncio
import random

from relay.routing.connection import Connection
from relay.routing.hub import Hub
from relay.tornado.outbox import fan_out
from relay.wire.envelope import Envelope
from tests.unit.test_outbox_and_hub import SlowTransport, TwoForms, hub_frame, outbox_on

CONSUMERS = 4
Operation = tuple[object, ...]
Outcome = list[tuple[bytes, bytes, int]]


async def _run(operations: list[Operation], *, fanned: bool) -> Outcome:
    hub = Hub(fan_out=fan_out) if fanned else Hub()
    transports = [SlowTransport() for _ in range(CONSUMERS)]
    connections = []
    for index, transport in enumerate(transports):
        transport.blocked = False
        connection = Connection("node", "peer", outbox_on(transport, max_frames=2), max_alerts_per_second=0)
        connections.append(connection)
        hub.register_consumer("s", connection, ["video-frame", "alert"], binary=bool(index % 2))
    for kind, *arguments in operations:
        index = arguments[0] if arguments else 0
        assert isinstance(index, int)
        if kind == "frame":
            hub.deliver(hub_frame(TwoForms(f"<f{index}>".encode())))
        elif kind == "alert":
            hub.deliver(Envelope.for_message("alert", "s", f"<a{index}>".encode()))
        elif kind == "reply":
            connections[index].outbox.send((f"<r{arguments[1]}>".encode(),))
        elif kind == "close":
            connections[index].outbox.close()
        elif kind == "back up":
            transports[index].blocked = True
        elif kind == "drain" and transports[index].blocked:
            transports[index].flush()
        elif kind == "unsubscribe":
            hub.unregister("s", connections[index])
        elif kind == "subscribe":
            hub.register_consumer("s", connections[index], ["video-frame", "alert"], binary=bool(arguments[1]))
        elif kind == "turn":
            await asyncio.sleep(0)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    return [
        (b"".join(transport.written), b"".join(transport.buffered), connection.outbox.frames_dropped)
        for transport, connection in zip(transports, connections, strict=True)
    ]


def _operations(rng: random.Random) -> list[Operation]:
    operations: list[Operation] = []
    for number in range(rng.randint(1, 40)):
        roll, consumer = rng.random(), rng.randrange(CONSUMERS)
        if roll < 0.35:
            operations.append(("frame", number))
        elif roll < 0.45:
            operations.append(("alert", number))
        elif roll < 0.55:
            operations.append(("reply", consumer, number))
        elif roll < 0.58:
            operations.append(("close", consumer))
        elif roll < 0.66:
            operations.append(("back up", consumer))
        elif roll < 0.74:
            operations.append(("drain", consumer))
        elif roll < 0.78:
            operations.append(("unsubscribe", consumer))
        elif roll < 0.82:
            operations.append(("subscribe", consumer, rng.random() < 0.5))
        else:
            operations.append(("turn",))
    return operations


async def test_each_consumer_gets_what_it_would_get_frame_by_frame() -> None:
    rng = random.Random(12)
    for case in range(3000):
        operations = _operations(rng)
        fanned = await _run(operations, fanned=True)
        one_by_one = await _run(operations, fanned=False)
        for consumer, (got, expected) in enumerate(zip(fanned, one_by_one, strict=True)):
            assert got[:2] == expected[:2], (case, consumer, operations)
            assert got[2] <= expected[2], (case, consumer, operations)
