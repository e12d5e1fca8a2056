"""Fixtures of the relay's own tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support import RelayHarness, running_relay, service_url


@pytest.fixture
async def two_nodes(database_url: str) -> AsyncIterator[tuple[RelayHarness, RelayHarness]]:
    """Two relay nodes on one database and the shared Redis (tests marked ``redis``)."""
    options = {"ping_interval": 0, "broker_url": service_url("RELAY_TEST_REDIS_URL", "Redis")}
    async with running_relay(database_url, **options) as first, running_relay(database_url, **options) as second:
        yield first, second
