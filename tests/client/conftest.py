"""These tests are about the clients and programs, not the database: one database (SQLite) is enough."""

from __future__ import annotations

import pytest


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    return sqlite_url
