"""Alerts confirmed while Redis is down reach the consumers on the other nodes once it is back.

Two relay nodes share a database and a ``redis-server`` of this test's own,
which the test kills and starts again (empty, as after a crash).  An ML service
on one node sends alerts throughout; a dashboard on the other node must get
every confirmed alert exactly once, in order, without reconnecting.
"""

from __future__ import annotations

import pytest

from relay.metrics import COUNTERS
from tests.services import private_redis
from tests.support import RelayHarness, running_relay

pytestmark = pytest.mark.redis


async def test_alerts_confirmed_while_redis_is_down_reach_the_other_node(database_url: str) -> None:
    async with private_redis() as redis:
        options = {"ping_interval": 0, "max_alerts_per_second": 0, "broker_url": redis.url}
        async with running_relay(database_url, **options) as first, running_relay(database_url, **options) as second:
            await outage(first, second, redis)


async def outage(first: RelayHarness, second: RelayHarness, redis: object) -> None:
    from tests.services import PrivateRedis

    assert isinstance(redis, PrivateRedis)
    _, token = await first.user()
    stream_id = await first.stream(token)
    dashboard = await second.consumer(token, stream_id, consumes=["alert"])
    ml = await first.consumer(token, stream_id, consumes=[], produces=["alert"])
    confirmed: list[str] = []

    async def alert(ref: str) -> None:
        await ml.send({"type": "alert", "streamId": stream_id, "severity": "high", "message": ref, "ref": ref})
        confirmed.append((await ml.expect("alert-stored", ref=ref))["id"])

    await alert("before")
    assert (await dashboard.until("alert"))["id"] == confirmed[0]

    filled_before = COUNTERS.alerts_gap_filled
    await redis.stop()
    for index in range(5):
        await alert(f"during-{index}")  # stored and confirmed: Redis is not needed for that
    await redis.start()

    await alert("after")
    received = [(await dashboard.until("alert"))["id"] for _ in range(len(confirmed) - 1)]
    assert received == confirmed[1:], "every confirmed alert, once, in order"
    assert COUNTERS.alerts_gap_filled >= filled_before


async def test_a_consumer_that_replayed_the_outage_does_not_get_it_again_from_the_gap_fill(database_url: str) -> None:
    """A dashboard that reconnected during the outage replayed what it missed; the node's gap fill must not
    send it the same alerts again once Redis is back (the soak saw 3 doubles and one alert out of order)."""
    async with private_redis() as redis:
        options = {"ping_interval": 0, "max_alerts_per_second": 0, "broker_url": redis.url}
        async with running_relay(database_url, **options) as first, running_relay(database_url, **options) as second:
            _, token = await first.user()
            stream_id = await first.stream(token)
            staying = await second.consumer(token, stream_id, consumes=["alert"])  # keeps the node following
            moving = await second.consumer(token, stream_id, consumes=["alert"])
            ml = await first.consumer(token, stream_id, consumes=[], produces=["alert"])

            async def alert(ref: str) -> str:
                await ml.send({"type": "alert", "streamId": stream_id, "severity": "low", "message": ref, "ref": ref})
                stored: str = (await ml.expect("alert-stored", ref=ref))["id"]
                return stored

            before = await alert("before")
            assert (await moving.until("alert"))["id"] == before
            await redis.stop()
            during = [await alert(f"during-{index}") for index in range(3)]
            await moving.close()  # and back, on the same node, resuming after what it had
            moving = await second.consumer(token, stream_id, consumes=["alert"], sinceAlertId=before)
            assert [(await moving.until("alert"))["id"] for _ in during] == during, "replayed, in order"
            await redis.start()
            after = await alert("after")
            assert [(await staying.until("alert"))["id"] for _ in range(5)] == [before, *during, after]

            await moving.send({"type": "ping"})
            heard = []
            while (message := await moving.recv()) != {"type": "pong"}:
                if isinstance(message, dict) and message.get("type") == "alert":
                    heard.append(message["id"])
            assert heard == [after], "after its replay, only the new alert: nothing twice, nothing out of order"
