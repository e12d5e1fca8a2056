"""Fixtures of the workbench's tests: the workbench with the relay inside it, in a real Chromium."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.workbench.support import CHROMIUM_ARGS, GUARD, WorkbenchServer, chromium_path


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
