"""Fixtures: a real database (SQLite always, PostgreSQL when configured), a real relay, and the
workbench with the relay inside it in a real Chromium."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.support import RelayHarness, postgres_schema, running_relay, service_url
from tests.workbench_support import CHROMIUM_ARGS, GUARD, WorkbenchServer, chromium_path


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


# ---------------------------------------------------------------------- the workbench in a browser


@pytest.fixture(scope="session")
def workbench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkbenchServer]:
    """One ``python -m workbench`` (relay inside) for the browser tests; each test makes its own users."""
    chromium_path()  # skip (or fail in CI) before starting anything
    server = WorkbenchServer(tmp_path_factory.mktemp("workbench")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, driven by Playwright (one per test module)."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh tab with no cookies."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.set_default_timeout(GUARD * 1000)
    expect.set_options(timeout=GUARD * 1000)
    try:
        yield context.new_page()
    finally:
        context.close()
