"""A child process that reads pages of a SQLite query straight into Arrow and streams them out.

Run (its :func:`main`, isolated) by :mod:`relay.history.sqlite_pages`,
which explains why it is a process of its own.  It reads one JSON object on
stdin::

    {"path": "/data/relay.db", "sql": "SELECT ... WHERE ... alert.seq > ? ... LIMIT ?", "after": 7,
     "parameters": "<hex of an Arrow stream of one row>", "rows": 20000, "schema": "<hex of an Arrow schema>"}

and runs ``sql`` page after page, with the row of ``parameters`` bound, each
time with its column ``after`` set to the first column's last value of the
page before (a keyset), writing each page
to stdout as one record batch of ``schema`` in an Arrow IPC stream, until a
page has fewer than ``rows`` rows.  Writing blocks while the reader is behind,
so at most about a page waits in this process.

A page ADBC's driver cannot read, or whose columns do not cast to ``schema``,
ends the stream early: the process then writes a last line
``relay.history.sqlite_reader refused: {"refused": SEQ, "error": "..."}`` on stderr
(``SEQ`` the keyset value the page started after) and exits with
:data:`REFUSED`, so the caller reads that page another way and goes on.
Only ``pyarrow``, ``orjson`` and ADBC's driver are imported, and no Python
value is turned into an Arrow one (the first such conversion imports pandas):
the process starts in about half a second.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, BinaryIO, Final

import orjson
import pyarrow as pa

REFUSED: Final = 3
"""Exit status: a page was refused (the last line on stderr says which)."""
REFUSAL: Final = "relay.history.sqlite_reader refused: "
"""How that line starts; a JSON object follows."""
BUSY_TIMEOUT_MS: Final = 5000
"""How long a read waits for a writer's lock (a checkpoint), as the relay's own connections do."""

BATCH_ROWS_OPTION: Final = "adbc.sqlite.query.batch_rows"
"""The driver's rows per batch, which are also the rows it infers each column's type from: set to
the page's size, so that every page comes as one batch typed from all of its rows."""


def read_pages(spec: dict[str, Any], out: BinaryIO) -> tuple[int, str] | None:
    """Stream the pages ``spec`` asks for to ``out``; the keyset value and error of a refused page, or None."""
    # Imported here, not above: the parent imports this module for REFUSED and must never load the
    # driver's own SQLite beside Python's (see relay.history.sqlite_pages).  The driver manager's own
    # API, not its DB-API module, which imports pyarrow.dataset and so pandas (2 s of the start).
    import adbc_driver_manager
    import adbc_driver_sqlite

    schema = pa.ipc.read_schema(pa.py_buffer(bytes.fromhex(spec["schema"])))
    parameters = pa.ipc.open_stream(bytes.fromhex(spec["parameters"])).read_next_batch()
    after: int = spec["after"]
    rows: int = spec["rows"]
    if "_sqlite3" in sys.modules:
        raise RuntimeError("Python's sqlite3 is loaded here: its SQLite and the driver's must not share a process")
    database = adbc_driver_sqlite.connect(Path(spec["path"]).as_uri() + "?mode=ro")
    connection = adbc_driver_manager.AdbcConnection(database)
    try:
        _run(connection, f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        with pa.ipc.new_stream(out, schema) as stream:
            while True:
                try:
                    page = _page(connection, spec["sql"], parameters, rows, schema)
                except (adbc_driver_manager.Error, pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
                    return parameters.column(after)[0].as_py(), str(error)
                if page.num_rows:
                    stream.write_batch(page)
                if page.num_rows < rows:
                    return None
                last = page.column(0).slice(page.num_rows - 1)
                parameters = parameters.set_column(after, parameters.schema.field(after), last)
    finally:
        connection.close()
        database.close()


def _run(connection: Any, sql: str) -> None:
    import adbc_driver_manager

    statement = adbc_driver_manager.AdbcStatement(connection)
    try:
        statement.set_sql_query(sql)
        stream, _ = statement.execute_query()
        pa.RecordBatchReader.from_stream(stream).read_all()
    finally:
        statement.close()


def _page(connection: Any, sql: str, parameters: pa.RecordBatch, rows: int, schema: pa.Schema) -> pa.RecordBatch:
    import adbc_driver_manager

    statement = adbc_driver_manager.AdbcStatement(connection)
    try:
        statement.set_options(**{BATCH_ROWS_OPTION: str(rows)})
        statement.set_sql_query(sql)
        statement.bind(parameters)
        stream, _ = statement.execute_query()
        table = pa.RecordBatchReader.from_stream(stream).read_all()
    finally:
        statement.close()
    columns = [column.combine_chunks().cast(field.type) for column, field in zip(table.columns, schema, strict=True)]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def main() -> int:
    spec = orjson.loads(sys.stdin.buffer.read())
    try:
        refused = read_pages(spec, sys.stdout.buffer)
    except BrokenPipeError:  # the reader went away (an export stopped): nothing to say, nothing to flush
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    if refused is None:
        return 0
    seq, error = refused
    sys.stderr.buffer.write(b"\n" + REFUSAL.encode() + orjson.dumps({"refused": seq, "error": error}) + b"\n")
    return REFUSED


if __name__ == "__main__":
    sys.exit(main())
