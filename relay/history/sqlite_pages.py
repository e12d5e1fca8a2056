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

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
from sqlalchemy import Connection, Dialect
from sqlalchemy.sql import Select
from sqlalchemy.sql.compiler import SQLCompiler

import relay
from relay.history.sqlite_reader import REFUSED

_SOURCE_ROOT = str(Path(relay.__file__).resolve().parent.parent)
"""Where the ``relay`` package is, put on the child's ``PYTHONPATH`` (a checkout run without installing)."""


def database_file(connection: Connection) -> Path | None:
    """The file of ``connection``'s SQLite database; None for another database, or one only this process sees."""
    if connection.dialect.name != "sqlite":
        return None
    database = connection.engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).expanduser().resolve()


@dataclass(frozen=True, slots=True)
class Refused:
    """The child could not read the page after ``seq`` (a value its driver cannot type): read it another way."""

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
        environment = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [_SOURCE_ROOT, os.environ.get("PYTHONPATH")])),
        }
        self._child = subprocess.Popen(
            [sys.executable, "-m", "relay.history.sqlite_reader"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment,
        )  # fmt: skip
        assert self._child.stdin is not None
        with self._child.stdin as spec_in:
            spec_in.write(orjson.dumps(spec))

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
        assert self._child.stderr is not None
        said = self._child.stderr.read()
        status = self._child.wait()
        if status == 0 and broken is None:
            return
        if status == REFUSED:
            told = orjson.loads(said)
            self.refused = Refused(int(told["refused"]), str(told["error"]))
        else:
            reason = said.decode(errors="replace").strip().splitlines()[-1:] or [broken or f"exit status {status}"]
            self.refused = Refused(self._after_seq, reason[0])

    def close(self) -> None:
        if self._child.poll() is None:
            self._child.kill()
        self._child.wait()
        for pipe in (self._child.stdout, self._child.stderr):
            if pipe is not None:
                pipe.close()

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
