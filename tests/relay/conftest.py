"""Fixtures of the relay's own tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy import Engine

from relay.store import Store
from relay.store.database import create_sync_engine
from tests.support import RelayHarness, running_relay, service_url


@pytest.fixture
async def two_nodes(database_url: str) -> AsyncIterator[tuple[RelayHarness, RelayHarness]]:
    """Two relay nodes on one database and the shared Redis (tests marked ``redis``)."""
    options = {"ping_interval": 0, "broker_url": service_url("RELAY_TEST_REDIS_URL", "Redis")}
    async with running_relay(database_url, **options) as first, running_relay(database_url, **options) as second:
        yield first, second


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A blocking engine (the history's) on a migrated database."""
    asyncio.run(_migrate(database_url))
    engine = create_sync_engine(database_url)
    yield engine
    engine.dispose()


async def _migrate(url: str) -> None:
    store = await Store.open(url)
    await store.close()
