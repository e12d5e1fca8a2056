"""Fixtures of every test: a real database (SQLite always, PostgreSQL when configured) and a real relay.

The workbench's browser fixtures live in ``tests/workbench/conftest.py``, so that
collecting the relay's tests never imports Playwright.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support import RelayHarness, postgres_schema, running_relay, service_url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database: a SQLite file, or a new PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'relay.db'}"
        return
    base = service_url("RELAY_TEST_POSTGRES_URL", "PostgreSQL")
    async with postgres_schema(base) as url:
        yield url


@pytest.fixture
async def relay(database_url: str) -> AsyncIterator[RelayHarness]:
    """A relay on an ephemeral port; pings and rate limits off unless a test turns them on."""
    async with running_relay(
        database_url, ping_interval=0, max_fps=0, max_alerts_per_second=0, max_rest_per_second=0
    ) as harness:
        yield harness
