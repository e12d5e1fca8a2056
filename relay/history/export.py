"""Exports that stream: alert history to a file or an HTTP answer, at flat memory, of any size.

:func:`chunks` is the one pipeline: batches of the alert table
(:mod:`relay.history.table`) from the database, through an encoder
(:mod:`relay.history.formats`), out as bytes, one batch at a time.  It is
blocking code, made to run in a thread of its own: ``relay export`` runs it in
the foreground, ``GET /api/alerts/export`` in a worker thread per export,
writing each chunk to the client before reading the next (so a slow client
slows its export, not the relay) and stopping when the client goes.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from pathlib import Path

from sqlalchemy import Engine

from relay import memory
from relay.history import table
from relay.history.formats import ExportFormat, encoder
from relay.store import AlertFilter

Progress = Callable[[int], object]
"""Told how many more alerts were written, after each batch."""


def chunks(
    engine: Engine,
    where: AlertFilter,
    format: ExportFormat,
    *,
    rows_per_batch: int = table.ROWS_PER_BATCH,
    progress: Progress | None = None,
) -> Generator[bytes]:
    """The export file of the alerts ``where`` selects, oldest first, in pieces as they are made.

    Reads with one connection, held until the iterator is exhausted or closed.
    """
    writing = encoder(format)
    try:
        with engine.connect() as connection:
            for batch in table.batches(connection, where, rows_per_batch=rows_per_batch):
                data = writing.encode(batch)
                if progress is not None:
                    progress(batch.num_rows)
                if data:
                    yield data
        yield writing.finish()
    finally:
        memory.give_back()  # a server would otherwise keep the export's freed memory: see relay.memory


def count(engine: Engine, where: AlertFilter) -> int:
    with engine.connect() as connection:
        return table.count(connection, where)


def write(
    engine: Engine, where: AlertFilter, format: ExportFormat, path: Path, *, progress: Progress | None = None
) -> None:
    """Write the export to ``path`` atomically: a partial file never has the final name, nor survives a failure."""
    partial = path.with_name(path.name + ".partial")
    try:
        with partial.open("wb") as file:
            for data in chunks(engine, where, format, progress=progress):
                file.write(data)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
