"""A relay node's readers of history: exports in threads of their own, and its analytics copy.

**Exports.**  An export reads with a blocking engine on the node's database,
in a worker thread per export (:mod:`relay.history.export` is blocking code),
and hands its pieces to the event loop one at a time: the loop writes a piece
to the client and only then asks for the next, so memory holds one batch per
export and a client that reads slowly slows only its own export.  Closing the
iteration (the client went away) stops the reading in its thread.

**Analytics.**  The node keeps a partitioned copy of every alert
(:mod:`relay.history.partitioned`) in its analytics folder, brought up to date
every ``analytics_refresh`` seconds and on demand (one run at a time; asking
while one runs waits for that one), and answers the named DuckDB queries
(:mod:`relay.history.analytics`) over it in a small pool of threads, so
analytics never need a manual step and never touch the live database.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import Counter
from collections.abc import AsyncGenerator, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from pathlib import Path
from typing import Final

from sqlalchemy import Engine

from relay.history import export, partitioned, report
from relay.history.analytics import Analytics, Answer, Query
from relay.history.formats import ExportFormat
from relay.store import AlertFilter
from relay.store.database import create_sync_engine

log = logging.getLogger("relay.history")

EXPORT_ROWS_PER_BATCH: Final = 10_000
"""Smaller than the CLI's batches: a server holds less per export, and the loop's share of the GIL stays large."""
MAX_EXPORTS: Final = 4
MAX_EXPORTS_PER_USER: Final = 2
QUERY_THREADS: Final = 2
REPORT_TITLE: Final = "Vigil Relay alert report"
EVERYONE: Final = AlertFilter()
"""The analytics copy holds every user's alerts; each query filters by its user."""


class TooManyExports(Exception):
    """This user already has :data:`MAX_EXPORTS_PER_USER` exports running."""


class History:
    """See the module docstring.  One per relay node; :meth:`start` on its loop, :meth:`close` when it stops."""

    def __init__(self, database_url: str, analytics_folder: Path, *, refresh_every: float = 0) -> None:
        self._database_url = database_url
        self._engine: Engine | None = None
        self._slots = asyncio.Semaphore(MAX_EXPORTS)
        self._running: Counter[str] = Counter()
        self._idle = asyncio.Event()
        self._idle.set()
        self.analytics_folder = analytics_folder
        self._analytics: Analytics | None = None
        self._refresh_every = refresh_every
        self._refreshing: asyncio.Future[partitioned.Refreshed] | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._threads = ThreadPoolExecutor(QUERY_THREADS, thread_name_prefix="analytics")
        self._refreshed = asyncio.Event()
        self.refreshed_at: datetime | None = None
        """When the analytics copy was last brought up to date by this node (None: not yet)."""
        self.behind = True
        """Whether this node stored alerts since its last refresh began (so the copy lacks them)."""

    @property
    def engine(self) -> Engine:
        """The blocking engine, made on first use."""
        if self._engine is None:
            self._engine = create_sync_engine(self._database_url)
        return self._engine

    # ------------------------------------------------------------------ exports

    async def export(self, where: AlertFilter, format: ExportFormat, *, owner: str) -> AsyncGenerator[bytes]:
        """The export file in pieces; :class:`TooManyExports` before the first if ``owner`` has enough running.

        Use it with :func:`contextlib.aclosing`, so that a client that leaves stops the reading.
        """
        if self._running[owner] >= MAX_EXPORTS_PER_USER:
            raise TooManyExports(owner)
        self._running[owner] += 1
        self._idle.clear()
        try:
            async with self._slots:
                loop = asyncio.get_running_loop()
                thread = ThreadPoolExecutor(1, thread_name_prefix="export")
                pieces = export.chunks(self.engine, where, format, rows_per_batch=EXPORT_ROWS_PER_BATCH)
                try:
                    while (piece := await loop.run_in_executor(thread, next, pieces, None)) is not None:
                        yield piece
                finally:
                    thread.submit(pieces.close)  # in the thread that reads: it may be amid a batch
                    thread.shutdown(wait=False)
        finally:
            self._running[owner] -= 1
            if not self._running[owner]:
                del self._running[owner]
            if not self._running:
                self._idle.set()

    @property
    def running(self) -> int:
        """Exports under way (for the metrics)."""
        return self._running.total()

    async def idle(self) -> None:
        """Return once no export is running."""
        await self._idle.wait()

    # ------------------------------------------------------------------ analytics

    def start(self) -> None:
        """Refresh the analytics copy now and then every ``refresh_every`` seconds (if not 0)."""
        if self._refresh_every > 0:
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_forever())

    async def refresh(self) -> partitioned.Refreshed:
        """Bring the analytics copy up to date now; if a run is under way, its outcome."""
        if self._refreshing is None:
            self.behind = False  # an alert stored from now on may miss this run: it sets it again
            loop = asyncio.get_running_loop()
            self._refreshing = loop.run_in_executor(
                self._threads, partitioned.refresh, self.engine, self.analytics_folder, EVERYONE
            )
            # Its outcome is read by whoever awaits it; this keeps a failure nobody awaited any more out of the log.
            self._refreshing.add_done_callback(lambda run: run.cancelled() or run.exception())
        running = self._refreshing
        try:
            done = await asyncio.shield(running)
        finally:
            if running.done() and self._refreshing is running:
                self._refreshing = None
        self.refreshed_at = done.finished_at
        return done

    async def forget_days(self, days: Iterable[date]) -> None:
        """Alerts stored on ``days`` were deleted: write those days of the analytics copy again, if there is one.

        A copy that was never made has nothing to forget (its first run reads
        the database as it is then).
        """
        days = sorted(set(days))
        if not days or not (self.analytics_folder / partitioned.STATE_FILE).exists():
            return
        loop = asyncio.get_running_loop()
        rewrite = functools.partial(partitioned.rewrite_days, self.engine, self.analytics_folder, EVERYONE, days)
        done = await loop.run_in_executor(self._threads, rewrite)
        self.refreshed_at = done.finished_at
        log.info("analytics copy: %d days written again after alerts were deleted", len(done.days_written))

    def note_stored(self) -> None:
        """An alert was stored on this node (a hook of the router's): the copy is behind."""
        self.behind = True

    async def query(self, query: Query | str, where: AlertFilter) -> Answer:
        """A named query over the analytics copy, in a thread."""
        return await asyncio.get_running_loop().run_in_executor(self._threads, self.analytics.run, query, where)

    async def report(self, where: AlertFilter, *, title: str = REPORT_TITLE) -> str:
        """The HTML report of what ``where`` selects, from an analytics copy brought up to date first."""
        await self.refresh()
        loop = asyncio.get_running_loop()
        answers = await loop.run_in_executor(self._threads, report.gather, self.analytics.run, where)
        render = functools.partial(report.render, answers, title=title, since=where.since, until=where.until)
        return await loop.run_in_executor(self._threads, render)

    @property
    def analytics(self) -> Analytics:
        """The queries over this node's analytics copy (for the workbench's pages, in the same process)."""
        if self._analytics is None:
            self._analytics = Analytics(self.analytics_folder)
        return self._analytics

    async def _refresh_forever(self) -> None:
        while True:
            try:
                done = await self.refresh()
                if done.alerts_written:
                    days = len(done.days_written)
                    log.info("analytics copy: %d alerts on %d days written", done.alerts_written, days)
            except Exception:  # the database gone for a while, a full disk: try again next time
                log.exception("analytics copy not refreshed; trying again in %.0f s", self._refresh_every)
            else:
                self._refreshed.set()
                self._refreshed = asyncio.Event()
            await asyncio.sleep(self._refresh_every)

    async def refreshed(self) -> None:
        """Return when the periodic refresher next finishes a run."""
        await self._refreshed.wait()

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            self._refresher = None
        if self._refreshing is not None:
            await asyncio.wait([self._refreshing])
        self._threads.shutdown(wait=False)
        if self._analytics is not None:
            self._analytics.close()
            self._analytics = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
