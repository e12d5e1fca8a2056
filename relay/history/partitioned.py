"""A folder of Parquet partitioned by day, kept up to date incrementally: what DuckDB reads.

Layout (Hive style, as DuckDB, pyarrow, pandas and Spark read it)::

    FOLDER/date=2026-10-01/alerts.parquet
    FOLDER/date=2026-10-02/alerts.parquet
    …
    FOLDER/_export.json        where the last run stopped, and for which filter
    FOLDER/_hourly/date=2026-10-01/counts.hourly     that day's hourly counts (relay.history.hourly)

A day's file holds every alert of the filter stored on that day (UTC), in
storage order.  A run (:func:`refresh`) finds the days that changed since the
last one — the days of alerts stored since (by ``seq``), plus the day the last
run ended in, whose last minutes may hold alerts that committed after it read
them, plus the days of alerts reviewed since — and rewrites just those days,
each into a new file that replaces the old one atomically; readers never see half a day.  So the first run writes
everything, and a run every few minutes rewrites the current day only.
:func:`rewrite_days` forces days to be written again (alerts deleted there).

The folder remembers its filter: a run with another filter is refused, so one
folder never mixes two exports.  Two runs on one folder take turns (a lock
file); a run that fails leaves the previous state, and the next run redoes
its days.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, Engine

from relay import memory
from relay.clock import iso, parse_iso, utcnow
from relay.history import hourly, table
from relay.history.formats import DayWriter
from relay.store import AlertFilter

STATE_FILE: Final = "_export.json"
LOCK_FILE: Final = ".lock"
DAY_FILE: Final = "alerts.parquet"
STATE_VERSION: Final = 3
"""Counted up when the day files' columns change (3: the hourly counts beside them): a folder of another
version is written again in full."""
SETTLING: Final = timedelta(minutes=5)
"""How far back from the end of the last run alerts may still commit (a transaction that took
its ``seq`` before the run read and committed after): that stretch's days are rewritten."""

Progress = Callable[[int], object]


class FolderInUse(ValueError):
    """The folder holds an export of another filter (or something that is not an export)."""


@dataclass(frozen=True)
class Refreshed:
    """What a run did."""

    days_written: list[date]
    alerts_written: int
    last_seq: int
    finished_at: datetime


def partition(folder: Path, day: date) -> Path:
    return folder / f"date={day.isoformat()}"


def refresh(
    engine: Engine,
    folder: Path,
    where: AlertFilter,
    *,
    progress: Progress | None = None,
    also_days: Iterable[date] = (),
) -> Refreshed:
    """Bring ``folder`` up to date with the alerts ``where`` selects; see the module docstring.

    ``also_days`` are rewritten whether or not new alerts came on them.
    ``progress`` is told how many alerts each written batch held.
    """
    _refuse_foreign(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder):
        state = _read_state(folder, where)
        try:
            with engine.connect() as connection:
                high_water = table.high_water(connection)
                days = _days_to_write(connection, where, state, also_days)
                written = sum(_write_days(connection, folder, where, run, progress) for run in _runs(days))
        finally:
            memory.give_back()  # the relay refreshes every few minutes: see relay.memory
        finished = utcnow()
        _write_state(folder, _State(_filter_json(where), high_water, finished))
    return Refreshed(days, written, high_water, finished)


def rewrite_days(engine: Engine, folder: Path, where: AlertFilter, days: Iterable[date]) -> Refreshed:
    """Write ``days`` again from the database (and whatever else is new)."""
    return refresh(engine, folder, where, also_days=days)


def count_pending(engine: Engine, folder: Path, where: AlertFilter) -> int:
    """How many alerts the next run will write (for a progress bar's total): all those of the days it will write."""
    _refuse_foreign(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder):
        state = _read_state(folder, where)
    with engine.connect() as connection:
        days = _days_to_write(connection, where, state, ())
        return sum(table.count(connection, table.days_filter(where, run[0], run[-1])) for run in _runs(days))


def _days_to_write(connection: Connection, where: AlertFilter, state: _State, also: Iterable[date]) -> list[date]:
    days = set(also)
    days.update(table.days_with_alerts(connection, where, after_seq=state.last_seq))
    if state.finished_at is not None:
        days.update(moment.astimezone(UTC).date() for moment in (state.finished_at - SETTLING, state.finished_at))
        days.update(table.days_with_alerts(connection, where, reviewed_since=state.finished_at - SETTLING))
    return sorted(days)


DAYS_PER_PASS: Final = 31
"""Consecutive days read in one pass, every one of their files open until the pass ends (each holds
about half a MB of the compressor's state): a month costs ~15 MB, whatever the history's length."""


def _runs(days: Iterable[date]) -> Iterator[list[date]]:
    """``days`` (sorted) in runs of consecutive days, at most :data:`DAYS_PER_PASS` each: a pass each."""
    run: list[date] = []
    for day in days:
        if run and (day - run[-1] != timedelta(days=1) or len(run) == DAYS_PER_PASS):
            yield run
            run = []
        run.append(day)
    if run:
        yield run


def _write_days(
    connection: Connection, folder: Path, where: AlertFilter, days: list[date], progress: Progress | None
) -> int:
    """Replace the files of the consecutive ``days``, and their hourly counts, with what the database holds
    for them now (removing a day that has nothing).

    The days are read in one pass, split by day as the batches come: read a day at a time, each day's
    first page went through SQLAlchemy and each day started a reader of its own (21 s for a month of a
    million alerts, against 9 s for the same rows as one export; benchmarks/analytics.py).  Alerts come
    in storage order, which is the order of their days only roughly (a transaction that took its ``seq``
    before midnight may commit after it; one user's alerts imported after another's), so every day's file
    stays open until the pass ends, and each gets its alerts in storage order.  Every file is put in place
    at the end, so a reader sees each day whole, old or new.
    """
    day_files: dict[date, _DayFile] = {}
    written = 0
    try:
        for batch in table.batches(connection, table.days_filter(where, days[0], days[-1])):
            for day, rows in _by_day(batch):
                day_file = day_files.get(day)
                if day_file is None:
                    day_file = day_files[day] = _DayFile(folder, day)
                day_file.add(rows)
            written += batch.num_rows
            if progress is not None:
                progress(batch.num_rows)
        for day in days:
            if day in day_files:
                day_files[day].replace()
            else:
                shutil.rmtree(partition(folder, day), ignore_errors=True)
                shutil.rmtree(hourly.day_folder(folder, partition(folder, day).name), ignore_errors=True)
    finally:
        for day_file in day_files.values():
            day_file.discard()
    return written


def _by_day(batch: pa.RecordBatch) -> Iterator[tuple[date, pa.RecordBatch]]:
    """The rows of ``batch`` by the UTC day they were stored on, in storage order within each day."""
    days = pc.cast(batch.column("createdAt"), pa.date32())  # the UTC date: the column is in UTC
    first, last = pc.min_max(days).values()
    if first == last:
        yield first.as_py(), batch
        return
    for day in pc.unique(days):
        yield day.as_py(), batch.filter(pc.equal(days, day))


class _DayFile:
    """A day of the copy being written: its Parquet file and hourly counts under partial names until
    :meth:`replace` puts both in place, the day first, then its counts at once (a query reads one or the
    other: relay.history.analytics)."""

    def __init__(self, folder: Path, day: date) -> None:
        self._target = partition(folder, day)
        self._counts_target = hourly.day_folder(folder, self._target.name)
        self._partial = self._target / f".{DAY_FILE}.partial"
        self._counts_partial = self._counts_target / f".{hourly.FILE}.partial"
        self._target.mkdir(exist_ok=True)
        self._writer = DayWriter(self._partial)
        self._counts = hourly.HourlyCounts()

    def add(self, rows: pa.RecordBatch) -> None:
        self._writer.write(rows)
        self._counts.add(rows)

    def replace(self) -> None:
        self._writer.close()
        self._counts_target.mkdir(parents=True, exist_ok=True)
        self._counts.write(self._counts_partial)
        self._partial.replace(self._target / DAY_FILE)
        self._counts_partial.replace(self._counts_target / hourly.FILE)

    def discard(self) -> None:
        """Whatever :meth:`replace` did not put in place goes (a run that failed leaves the day as it was)."""
        self._writer.close()
        self._partial.unlink(missing_ok=True)
        self._counts_partial.unlink(missing_ok=True)


@dataclass(frozen=True)
class _State:
    filter: dict[str, Any]
    last_seq: int
    finished_at: datetime | None


def _filter_json(where: AlertFilter) -> dict[str, Any]:
    """The filter as the state file keeps it: only the fields it sets (so a field added to
    :class:`AlertFilter` later does not make an older folder's filter look different); times as ISO text."""
    fields = asdict(where)
    for name in ("since", "until"):
        fields[name] = iso(fields[name])
    fields["stream_ids"] = sorted(fields["stream_ids"])
    fields["severities"] = sorted(fields["severities"])
    return {name: value for name, value in fields.items() if value not in (None, [])}


def _read_state(folder: Path, where: AlertFilter) -> _State:
    wanted = _filter_json(where)
    path = folder / STATE_FILE
    if not path.exists():
        _refuse_foreign(folder)
        return _State(wanted, 0, None)
    try:
        saved = orjson.loads(path.read_bytes())
        state = _State(
            saved["filter"],
            int(saved["lastSeq"]),
            parse_iso(saved["finishedAt"]) if saved.get("finishedAt") else None,
        )
    except (ValueError, KeyError, TypeError) as error:
        raise FolderInUse(f"{path} is not an export's state file ({error}); choose another folder") from None
    if saved.get("version") != STATE_VERSION:
        return _State(wanted, 0, None)  # another layout: write everything again
    if {name: value for name, value in state.filter.items() if value not in (None, [])} != wanted:
        raise FolderInUse(f"{folder} holds an export of another filter ({state.filter}); choose another folder")
    return state


def _refuse_foreign(folder: Path) -> None:
    """Never write into a folder that holds something else than an export (it could be anyone's files)."""
    if not folder.is_dir() or (folder / STATE_FILE).exists():
        return
    ours = {LOCK_FILE, hourly.FOLDER}
    if any(entry.name not in ours and not entry.name.startswith("date=") for entry in folder.iterdir()):
        raise FolderInUse(f"{folder} is not empty and holds no export: choose an empty or new folder")


def _write_state(folder: Path, state: _State) -> None:
    body = {
        "version": STATE_VERSION,
        "filter": state.filter,
        "lastSeq": state.last_seq,
        "finishedAt": iso(state.finished_at),
    }
    partial = folder / f".{STATE_FILE}.partial"
    partial.write_bytes(orjson.dumps(body, option=orjson.OPT_INDENT_2))
    partial.replace(folder / STATE_FILE)


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One run at a time on a folder, across processes (the relay's refresher and ``relay export``)."""
    descriptor = os.open(folder / LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)
