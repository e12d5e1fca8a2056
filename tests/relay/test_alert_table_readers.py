"""The alert table read from a SQLite file by the child reader is what SQLAlchemy reads, page for page.

:func:`relay.history.table.batches` reads the first page through SQLAlchemy (all of
them from the child when a time range spans more than a page) and the rest
through a child process (:mod:`relay.history.sqlite_pages`), with the
metadata's well-known keys picked out by Arrow (:mod:`relay.history.metadata_columns`).
Whatever either refuses is read through SQLAlchemy; the answer must be the same
table, whatever the metadata holds.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from sqlalchemy import Engine, text

from benchmarks.history_data import seed
from relay.history import metadata_columns, sqlite_pages, table
from relay.history.metadata_columns import well_known
from relay.store import AlertFilter
from relay.store.database import create_sync_engine

NASTY_METADATA = [
    '{"confidence": "0.9", "objectType": "car"}',
    '{"location": [1, 2], "confidence": 0.25}',
    "null",
    '{"confidence": 1e400}',
    '{"objectType": 5}',
    '{"a":\n 1, "confidence": 0.3}',
    '{"confidence": 0.5, "confidence": 0.7}',
    '{"objectType": "naïve ☃ \\u2028"}',
    '{"location": {"x": "left", "y": 0.5}}',
    "{}",
]


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Engine]:
    """A blocking engine on a SQLite file of this test's own (the child reader reads files)."""
    engine = create_sync_engine(sqlite_url)
    yield engine
    engine.dispose()


@pytest.fixture
def children(monkeypatch: pytest.MonkeyPatch) -> list[sqlite_pages.ChildPages]:
    """Every child reader started, to see that the child read pages (and has stopped)."""
    started: list[sqlite_pages.ChildPages] = []
    original = sqlite_pages.ChildPages.__init__

    def recording(self: sqlite_pages.ChildPages, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        started.append(self)

    monkeypatch.setattr(sqlite_pages.ChildPages, "__init__", recording)
    return started


def _seeded(engine: Engine) -> Any:
    seeded = seed(engine, 120, streams=3, days=2, bursts=0)
    with engine.begin() as connection:
        for index, metadata in enumerate(NASTY_METADATA):
            connection.execute(
                text("UPDATE alert SET metadata = :m WHERE seq = :s"), {"m": metadata, "s": 9 * index + 7}
            )
    return seeded


def _reference(engine: Engine, where: AlertFilter) -> pa.Table:
    with engine.connect() as connection:
        rows = connection.execute(table.query(where, "sqlite")).all()
    return _comparable(pa.Table.from_batches([table.to_batch(rows, "sqlite")]))


def _read(engine: Engine, where: AlertFilter, rows: int) -> pa.Table:
    with engine.connect() as connection:
        batches = list(table.batches(connection, where, rows_per_batch=rows))
    return _comparable(pa.Table.from_batches(batches, schema=table.SCHEMA))


def _comparable(read: pa.Table) -> pa.Table:
    """Severities as text: each batch has a dictionary of its own, in the order it met them."""
    at = read.schema.get_field_index("severity")
    return read.set_column(at, "severity", read.column(at).cast(pa.string()))


def test_every_filter_reads_the_same_table_both_ways(engine: Engine, children: list[sqlite_pages.ChildPages]) -> None:
    seeded = _seeded(engine)
    since = datetime(2026, 10, 1, 5, tzinfo=UTC)  # the seed's first day
    filters = [
        AlertFilter(),
        AlertFilter(user_id=seeded.user_id, stream_ids=seeded.stream_ids[:2]),
        AlertFilter(severities=["high", "low"], since=since, until=since + timedelta(hours=20)),
        AlertFilter(text="a", min_confidence=0.2, max_confidence=0.9),
        AlertFilter(reviewed=False, false_positive=False),
    ]
    for where in filters:
        reference = _reference(engine, where)
        assert reference.num_rows > 8, where
        assert _read(engine, where, rows=4).equals(reference), where
    assert len(children) == len(filters), "pages after the first came from a child"
    assert all(child.refused is None for child in children)
    assert all(child._child.returncode == 0 for child in children), "each child finished and was reaped"
    assert "adbc_driver_sqlite" not in sys.modules, "the driver's own SQLite never loads beside Python's"


def test_a_time_range_longer_than_a_page_is_read_by_the_child_from_its_first_page(
    engine: Engine, children: list[sqlite_pages.ChildPages], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A day of the partitioned copy starts with the child; a read without a time range (it may fit
    in a page) has its first page read through SQLAlchemy, and nothing else is."""
    seeded = seed(engine, 120, streams=3, days=2, bursts=0)
    start = datetime(2026, 10, 1, tzinfo=UTC)
    day = AlertFilter(user_id=seeded.user_id, since=start, until=start + timedelta(days=1))
    converted: list[int] = []
    original = table.to_batch

    def counting(rows: Any, dialect: str) -> pa.RecordBatch:
        converted.append(len(rows))
        return original(rows, dialect)

    monkeypatch.setattr(table, "to_batch", counting)
    read_day, read_all = _read(engine, day, rows=4), _read(engine, AlertFilter(), rows=4)
    monkeypatch.setattr(table, "to_batch", original)
    assert read_day.equals(_reference(engine, day))
    assert read_day.num_rows > 8
    assert read_all.equals(_reference(engine, AlertFilter()))
    assert converted == [4], "the day: no page through SQLAlchemy; everything: its first page alone"
    assert len(children) == 2


def test_a_page_the_child_refuses_is_read_through_sqlalchemy(
    engine: Engine,
    children: list[sqlite_pages.ChildPages],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _seeded(engine)
    wrong = table._READ_SCHEMA.set(1, pa.field("c1", pa.int64()))  # ids are text: no page casts
    monkeypatch.setattr(table, "_READ_SCHEMA", wrong)
    assert _read(engine, AlertFilter(), rows=7).equals(_reference(engine, AlertFilter()))
    [child] = children
    assert child.refused is not None
    assert child.refused.seq > 0
    assert "reading the rest through SQLAlchemy" in caplog.text


def test_an_export_stopped_early_stops_its_child(engine: Engine, children: list[sqlite_pages.ChildPages]) -> None:
    seed(engine, 200, streams=1, days=1, bursts=0)
    with engine.connect() as connection:
        pages = table.batches(connection, AlertFilter(), rows_per_batch=5)
        next(pages)
        next(pages)  # from the child
        pages.close()
    [child] = children
    assert child._child.returncode is not None, "killed and reaped, not left running"


def test_a_page_read_again_is_the_same_stretch_of_alerts(
    engine: Engine, children: list[sqlite_pages.ChildPages], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page Arrow refuses is read again through SQLAlchemy up to the same last alert, not ``rows``
    alerts on: alerts removed meanwhile (retention) must not pull the next page's into it twice."""
    seed(engine, 60, streams=1, days=1, bursts=0)
    with engine.connect() as connection:
        seqs = connection.execute(text("SELECT seq FROM alert ORDER BY seq")).scalars().all()
    removed = {seqs[11], seqs[12]}  # in the first page from the child (the second of ten)
    reads = []

    def refusing_after_a_removal(metadata: pa.Array) -> list[pa.Array] | None:
        reads.append(len(metadata))
        if len(reads) > 1:
            return well_known(metadata)
        with engine.begin() as connection:
            connection.execute(text(f"DELETE FROM alert WHERE seq IN ({', '.join(map(str, removed))})"))
        return None

    monkeypatch.setattr(metadata_columns, "well_known", refusing_after_a_removal)
    read = _read(engine, AlertFilter(), rows=10).column("seq").to_pylist()
    assert read == [seq for seq in seqs if seq not in removed], "each alert once, in order"
    assert len(children) == 1


def test_the_child_is_not_moved_by_the_environment_or_the_working_directory(
    engine: Engine, children: list[sqlite_pages.ChildPages], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Found by a hostile review: with ``PYTHONVERBOSE`` set the child filled its stderr pipe and both sides
    waited for ever; an ``orjson.py`` in the server's working directory ran in the child."""
    seed(engine, 60, streams=1, days=1, bursts=0)
    stray = tmp_path / "elsewhere"
    stray.mkdir()
    (stray / "orjson.py").write_text("raise SystemExit('a stray module ran in the child')\n")
    monkeypatch.chdir(stray)
    monkeypatch.setenv("PYTHONVERBOSE", "1")
    assert _read(engine, AlertFilter(), rows=10).equals(_reference(engine, AlertFilter()))
    [child] = children
    assert child.refused is None, child.refused


def test_the_child_reads_the_file_sqlite_opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A relative database path is the file SQLite opened, not one resolved again later from another folder."""
    monkeypatch.chdir(tmp_path)
    engine = create_sync_engine("sqlite:///relative.db")
    try:
        with engine.connect() as connection:
            opened = sqlite_pages.database_file(connection)
            (tmp_path / "other").mkdir()
            monkeypatch.chdir(tmp_path / "other")
            assert sqlite_pages.database_file(connection) == opened == tmp_path / "relative.db"
    finally:
        engine.dispose()
    memory = create_sync_engine("sqlite://")
    with memory.connect() as connection:
        assert sqlite_pages.database_file(connection) is None, "a database only this process sees"
    memory.dispose()
