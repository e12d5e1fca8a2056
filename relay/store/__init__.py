"""Persistence: SQLAlchemy asyncio models and the one place for each query."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from relay.store.alerts import AlertFilter, Alerts, Page, Review, Snapshot, SortedPage, StoredAlert, UnknownStream
from relay.store.database import create_engine, is_unavailable, migrate, session_factory
from relay.store.jobs import Jobs, Pruned
from relay.store.search import TextIndex, text_index
from relay.store.sorting import Sort, SortKey
from relay.store.statistics import Statistics
from relay.store.streams import Streams
from relay.store.users import NewToken, Removed, TokenSummary, Users, UserSummary

__all__ = [
    "AlertFilter",
    "Alerts",
    "Jobs",
    "NewToken",
    "Page",
    "Pruned",
    "Removed",
    "Review",
    "Snapshot",
    "Sort",
    "SortKey",
    "SortedPage",
    "Statistics",
    "Store",
    "StoredAlert",
    "Streams",
    "TokenSummary",
    "UnknownStream",
    "UserSummary",
    "Users",
    "is_unavailable",
]


class Store:
    """The database of one relay process: an engine and the query groups on it."""

    def __init__(self, engine: AsyncEngine, text_index: TextIndex = TextIndex.NONE) -> None:
        self.engine = engine
        sessions = session_factory(engine)
        self.users = Users(sessions)
        self.streams = Streams(sessions)
        self.alerts = Alerts(sessions, text_index, dialect=engine.dialect.name)
        self.statistics = Statistics(engine)
        self.jobs = Jobs(sessions)

    @classmethod
    async def open(cls, url: str, **engine_options: Any) -> Store:
        """Connect to ``url``, migrate it to the newest schema, find its text index, analyse it if stale.

        Analysing here is what makes the first queries after a bulk import (or
        after a migration that rewrote every alert) fast, whichever process
        opens the database next.
        """
        engine = create_engine(url, **engine_options)
        await migrate(engine)
        store = cls(engine, await text_index(engine))
        await store.statistics.refresh_if_stale()
        return store

    async def ping(self) -> None:
        """Raise unless the database answers a trivial query (for health checks)."""
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def close(self) -> None:
        await self.engine.dispose()
