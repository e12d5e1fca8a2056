"""The node's alert continuity without sockets: gaps in a stream's alerts are filled from the database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from relay.representation import alert_message
from relay.wire import ALERT, AlertIn, Subscribe, encode
from relay.wire.envelope import Envelope
from tests.unit.rules import Node, node_on


@pytest.fixture
async def node(sqlite_url: str) -> AsyncIterator[Node]:
    async with node_on(sqlite_url) as node:
        yield node


async def stored_envelopes(node: Node, stream_id: str, count: int) -> list[Envelope]:
    """``count`` alerts stored (as another node would store them) and the envelopes that would carry them."""
    envelopes = []
    for index in range(count):
        row = (await node.store.alerts.add(AlertIn(stream_id, "low", f"a{index}", {}, 1))).alert
        envelopes.append(Envelope.for_message(ALERT, stream_id, encode(alert_message(row)), seq=row.stream_seq))
    return envelopes


async def test_a_gap_is_filled_from_the_database_in_order_and_late_copies_are_dropped(node: Node) -> None:
    ana, _ = await node.user("ana")
    stream_id = await node.stream(ana)
    dashboard, sink = node.connection(ana)
    await node.router.subscribe(dashboard, Subscribe(stream_id, consumes=frozenset({"alert"})))
    assert node.continuity.follows(stream_id)

    first, lost, also_lost, after = await stored_envelopes(node, stream_id, 4)
    node.continuity.deliver(first)
    node.continuity.deliver(after)  # 2 and 3 never came: a gap
    await sink.gathered("alert", 4)
    node.continuity.deliver(lost)  # a late copy of one the fill delivered
    node.continuity.deliver(also_lost)
    messages = [m["message"] for m in sink.messages if m["type"] == "alert"]
    assert messages == ["a0", "a1", "a2", "a3"], "every alert once, in the stream's order"


async def test_after_a_broker_outage_what_was_stored_meanwhile_is_delivered(node: Node) -> None:
    ana, _ = await node.user("ana")
    stream_id = await node.stream(ana)
    (earlier,) = await stored_envelopes(node, stream_id, 1)
    dashboard, sink = node.connection(ana)
    await node.router.subscribe(dashboard, Subscribe(stream_id, consumes=frozenset({"alert"})))
    await stored_envelopes(node, stream_id, 2)  # stored on another node while the broker was down
    node.continuity.catch_up()
    assert [m["message"] for m in await sink.gathered("alert", 2)] == ["a0", "a1"]
    node.continuity.deliver(earlier)  # older than what the consumer came in at: not delivered
    assert len([m for m in sink.messages if m["type"] == "alert"]) == 2
