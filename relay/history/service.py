"""A relay node's readers of history: exports in threads of their own, bounded per user and in all.

An export reads with a blocking engine on the node's database, in a worker
thread per export (:mod:`relay.history.export` is blocking code), and hands its
pieces to the event loop one at a time: the loop writes a piece to the client
and only then asks for the next, so memory holds one batch per export and a
client that reads slowly slows only its own export.  Closing the iteration
(the client went away) stops the reading in its thread.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncGenerator
from concurrent.futures import ThreadPoolExecutor
from typing import Final

from sqlalchemy import Engine

from relay.history import export
from relay.history.formats import ExportFormat
from relay.store import AlertFilter
from relay.store.database import create_sync_engine

EXPORT_ROWS_PER_BATCH: Final = 10_000
"""Smaller than the CLI's batches: a server holds less per export, and the loop's share of the GIL stays large."""
MAX_EXPORTS: Final = 4
MAX_EXPORTS_PER_USER: Final = 2


class TooManyExports(Exception):
    """This user already has :data:`MAX_EXPORTS_PER_USER` exports running."""


class History:
    """See the module docstring.  One per relay node; :meth:`close` when the node stops."""

    def __init__(self, database_url: str) -> None:
        self._database_url = database_url
        self._engine: Engine | None = None
        self._slots = asyncio.Semaphore(MAX_EXPORTS)
        self._running: Counter[str] = Counter()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def engine(self) -> Engine:
        """The blocking engine, made on first use (most nodes never export)."""
        if self._engine is None:
            self._engine = create_sync_engine(self._database_url)
        return self._engine

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

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
