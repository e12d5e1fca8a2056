"""Planner statistics kept current: ``ANALYZE`` once the alert table has changed a lot.

Both databases choose how to run a history query from statistics, and both go
badly wrong without them.  PostgreSQL here runs without autovacuum, so after a
bulk import nothing analyses the table: keyset pages then take about a second
instead of milliseconds (a sequential scan and a sort).  SQLite has no
statistics until ``ANALYZE``: it then guesses that a stream's index yields a
handful of alerts and starts a text search there, probing the FTS5 table once
per alert, instead of reading the FTS5 matches newest first.

:meth:`Statistics.refresh_if_stale` is cheap enough to ask often: the store
asks when it opens (so the relay, and any ``relay`` command, after a bulk
import) and the relay asks every ``RELAY_STATISTICS_INTERVAL`` seconds (after it
has stored many alerts).  Stale is autovacuum's own rule, more than 50 rows
plus 10 % of the table changed since the last ``ANALYZE``: changes as
PostgreSQL counts them (``pg_stat_user_tables``), and on SQLite, which counts
none, the distance of the row count from the one the statistics were made at.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger("relay.store")

ANALYSED = ("alert", "video_stream")
"""The tables history queries plan over."""


class Statistics:
    """``ANALYZE`` for one database; see the module docstring."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def refresh(self) -> None:
        """Analyse the history's tables now (after a bulk import, say)."""
        async with self._engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                await connection.execute(text(f"ANALYZE {', '.join(ANALYSED)}"))
            elif connection.dialect.name == "sqlite":  # about 0.1 s per 200,000 alerts here
                for table in ANALYSED:
                    await connection.execute(text(f"ANALYZE {table}"))

    async def stale(self) -> bool:
        """Whether the alert table changed enough since its last ``ANALYZE`` to plan differently."""
        async with self._engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                return await _postgresql_stale(connection)
            if connection.dialect.name == "sqlite":
                return await _sqlite_stale(connection)
        return False

    async def refresh_if_stale(self) -> bool:
        """Analyse if :meth:`stale`; whether it did."""
        if not await self.stale():
            return False
        await self.refresh()
        log.info("analysed %s: the planner's statistics were out of date", " and ".join(ANALYSED))
        return True

    async def keep_current(self, interval: float) -> None:
        """Every ``interval`` seconds, :meth:`refresh_if_stale`, until cancelled (a relay node's task)."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.refresh_if_stale()
            except Exception as error:  # a database gone for now, most likely: the next round tries again
                log.warning("could not check the planner's statistics: %s", error)


def _changed_enough(changed: float, rows: float) -> bool:
    return changed > 50 + 0.1 * rows


async def _postgresql_stale(connection: AsyncConnection) -> bool:
    row = (
        await connection.execute(
            text(
                "SELECT c.reltuples, s.n_mod_since_analyze FROM pg_class c "
                "JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.oid = 'alert'::regclass"
            )
        )
    ).one_or_none()
    if row is None:
        return False
    rows, changed = row
    return _changed_enough(float(changed or 0), max(float(rows), 0.0))


async def _sqlite_stale(connection: AsyncConnection) -> bool:
    has_statistics = await connection.scalar(
        text("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'")
    )
    analysed = 0
    if has_statistics:
        stat = await connection.scalar(text("SELECT stat FROM sqlite_stat1 WHERE tbl = 'alert' LIMIT 1"))
        analysed = int(str(stat).split()[0]) if stat else 0
    rows = int(await connection.scalar(text("SELECT count(*) FROM alert")) or 0)
    return _changed_enough(abs(rows - analysed), analysed)
