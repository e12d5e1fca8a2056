"""Persistence: SQLAlchemy asyncio models and the one place for each query."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from relay.store.alerts import AlertFilter, Alerts, StoredAlert, UnknownStream
from relay.store.database import create_engine, is_unavailable, migrate, session_factory
from relay.store.streams import Streams
from relay.store.users import NewToken, Users

__all__ = [
    "AlertFilter",
    "Alerts",
    "NewToken",
    "Store",
    "StoredAlert",
    "Streams",
    "UnknownStream",
    "Users",
    "is_unavailable",
]


class Store:
    """The database of one relay process: an engine and the query groups on it."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        sessions = session_factory(engine)
        self.users = Users(sessions)
        self.streams = Streams(sessions)
        self.alerts = Alerts(sessions)

    @classmethod
    async def open(cls, url: str, **engine_options: Any) -> Store:
        """Connect to ``url`` and migrate it to the newest schema."""
        engine = create_engine(url, **engine_options)
        await migrate(engine)
        return cls(engine)

    async def ping(self) -> None:
        """Raise unless the database answers a trivial query (for health checks)."""
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def close(self) -> None:
        await self.engine.dispose()
