"""Pages of a query on a SQLite file, read in C by a child process and streamed back as Arrow.

Through ``sqlite3`` every value of every row becomes a Python object that Arrow
then copies into its columns: at a million alerts that was two thirds of an
export's time (55,000 rows/s; issue 10 asks for 100,000).  ADBC's SQLite driver
steps the statement in C and fills Arrow buffers directly (121,000 rows/s for
the same export).  But the driver links its own copy of SQLite, and two copies
of SQLite in one process corrupt databases: closing a file in one releases the
POSIX locks the other holds on it (https://www.sqlite.org/howtocorrupt.html,
2.2.1; seen here as "file is not a database" in a test).  So the driver runs in
a child, :mod:`relay.history.sqlite_reader`, which opens nothing else, and the
pages come back as an Arrow IPC stream over a pipe.  The child also reads on
the other core while this process encodes the page before.

Starting the child costs about half a second, so callers read the first page
themselves and start one only when there is more.  The statement is
SQLAlchemy's, compiled for SQLite, with its parameters processed by their types
exactly as SQLAlchemy would bind them (a time becomes the text the column
holds): the child cannot disagree with the rest of the store about which rows
match.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
from sqlalchemy import Connection, Dialect, text
from sqlalchemy.sql import Select
from sqlalchemy.sql.compiler import SQLCompiler

import relay
from relay.history.sqlite_reader import REFUSAL, REFUSED

_SOURCE_ROOT = str(Path(relay.__file__).resolve().parent.parent)
"""Where the ``relay`` package is: the child appends it to its path (a checkout run without installing)."""
_START = "import sys; sys.path.append(sys.argv[1]); from relay.history.sqlite_reader import main; sys.exit(main())"
"""The child's program, run isolated (``-I``): no ``PYTHON*`` variables (``PYTHONVERBOSE`` would fill its
stderr), no user site, and not the server's working directory first on its path (a stray ``orjson.py``
there would run)."""
STDERR_TAIL = 65_536
"""Bytes of the child's stderr read back for why it stopped."""


def database_file(connection: Connection) -> Path | None:
    """The file of ``connection``'s SQLite database as SQLite itself opened it; None for another database,
    or one only this process sees (in memory, temporary)."""
    if connection.dialect.name != "sqlite":
        return None
    files = {name: file for _, name, file in connection.execute(text("PRAGMA database_list"))}
    return Path(files["main"]) if files.get("main") else None


@dataclass(frozen=True, slots=True)
class Refused:
    """The child did not read the page after ``seq`` (its driver refused it, or the child failed or was killed):
    read it and the rest another way."""

    seq: int
    error: str


class ChildPages:
    """The pages of ``statement`` after ``after_seq``, from a child process; iterate once, then see :attr:`refused`.

    ``statement`` must take its keyset value from a bind parameter named ``after`` and end in a
    ``LIMIT`` of ``rows``; each page is a record batch of ``schema`` (the columns as read).
    Closing (or leaving the ``with`` block) before the end stops the child.
    """

    def __init__(
        self, path: Path, statement: Select[Any], *, after: str, after_seq: int, rows: int, dialect: Dialect,
        schema: pa.Schema,
    ) -> None:  # fmt: skip
        sql, names, parameters = _compiled(statement, dialect, {after: after_seq})
        spec = {
            "path": str(path),
            "sql": sql,
            "parameters": _one_row(parameters).hex(),
            "after": names.index(after),
            "rows": rows,
            "schema": schema.serialize().to_pybytes().hex(),
        }
        self.refused: Refused | None = None
        self._after_seq = after_seq
        # A file, not a pipe: a child that wrote more than a pipe holds before finishing its pages
        # would wait for us while we wait for its pages.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close(), like the child)
        self._child = subprocess.Popen(
            [sys.executable, "-I", "-c", _START, _SOURCE_ROOT],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
        )  # fmt: skip
        assert self._child.stdin is not None
        try:
            with self._child.stdin as spec_in:
                spec_in.write(orjson.dumps(spec))
        except OSError:  # it died at once
            self.close()
            raise

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        assert self._child.stdout is not None
        try:
            with pa.ipc.open_stream(self._child.stdout) as stream:
                for page in stream:
                    self._after_seq = page.column(0)[-1].as_py()
                    yield page
        except pa.ArrowInvalid as error:  # the child died before or while writing (no driver, killed)
            self._finish(str(error))
            return
        self._finish(None)

    def _finish(self, broken: str | None) -> None:
        status = self._child.wait()
        if status == 0 and broken is None:
            return
        said = self._said()
        if status == REFUSED and said and said[-1].startswith(REFUSAL):
            told = orjson.loads(said[-1].removeprefix(REFUSAL))
            self.refused = Refused(int(told["refused"]), str(told["error"]))
        else:  # it failed (a traceback), or was killed: the pages after the last one it sent
            reason = " | ".join(said[-5:]) or broken or f"exit status {status}"
            self.refused = Refused(self._after_seq, reason)

    def _said(self) -> list[str]:
        """The last lines the child wrote on stderr."""
        end = self._stderr.seek(0, 2)
        self._stderr.seek(max(0, end - STDERR_TAIL))
        return self._stderr.read().decode(errors="replace").strip().splitlines()

    def close(self) -> None:
        if self._child.poll() is None:
            self._child.kill()
        self._child.wait()
        for pipe in (self._child.stdin, self._child.stdout):
            if pipe is not None:
                pipe.close()
        self._stderr.close()

    def __enter__(self) -> ChildPages:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


_PLAIN = (str, int, float)


def _one_row(values: list[Any]) -> bytes:
    """``values`` as an Arrow stream of one row, the columns the driver binds."""
    columns = [pa.array([value], pa.int64() if isinstance(value, int) else None) for value in values]
    batch = pa.RecordBatch.from_arrays(columns, names=[f"p{index}" for index in range(len(values))])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as stream:
        stream.write_batch(batch)
    return bytes(sink.getvalue().to_pybytes())


def _compiled(statement: Select[Any], dialect: Dialect, values: dict[str, Any]) -> tuple[str, list[str], list[Any]]:
    """``statement``'s SQL for SQLite, its parameters' names in order, and their values as SQLAlchemy binds them."""
    compiled = statement.compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler)
    state = compiled.construct_expanded_state(values)
    expanded_from = {name: origin for origin, names in state.parameter_expansion.items() for name in names}
    names = list(state.positiontup or ())
    parameters = []
    for name in names:
        value = state.parameters[name]
        processor = state.processors.get(name)
        if processor is None:
            bind = compiled.binds[expanded_from.get(name, name)]
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if processor is not None:
            value = processor(value)
        if isinstance(value, bool):
            value = int(value)
        if not isinstance(value, _PLAIN):
            raise TypeError(f"a parameter the SQLite reader cannot send: {type(value).__name__}")
        parameters.append(value)
    return state.statement, names, parameters
