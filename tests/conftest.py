"""Fixtures of every test: a real database (SQLite always, PostgreSQL when configured) and a real relay.

The workbench's browser fixtures live in ``tests/workbench/conftest.py``, so that
collecting the relay's tests never imports Playwright.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relay.store import Store
from tests.support import RelayHarness, postgres_schema, running_relay, service_url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated to the newest schema once per test run; tests get copies."""
    path = tmp_path_factory.mktemp("template") / "relay.db"

    async def migrate() -> None:
        store = await Store.open(f"sqlite+aiosqlite:///{path}")
        await store.close()

    asyncio.run(migrate())
    return path


def copy_of(template: Path, folder: Path) -> str:
    """The URL of a copy of ``template`` in ``folder``: a fresh database, already migrated."""
    shutil.copy(template, folder / "relay.db")
    return f"sqlite+aiosqlite:///{folder / 'relay.db'}"


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    """A fresh SQLite database of this test's own, already migrated."""
    return copy_of(sqlite_template, tmp_path)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, sqlite_template: Path, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh database with the newest schema: a SQLite file, or a new PostgreSQL schema."""
    if request.param == "sqlite":
        yield copy_of(sqlite_template, tmp_path)
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
