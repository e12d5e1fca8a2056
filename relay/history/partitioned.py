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
                written = sum(_write_day(connection, folder, where, day, progress) for day in days)
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
        return sum(table.count(connection, table.day_filter(where, day)) for day in days)


def _days_to_write(connection: Connection, where: AlertFilter, state: _State, also: Iterable[date]) -> list[date]:
    days = set(also)
    days.update(table.days_with_alerts(connection, where, after_seq=state.last_seq))
    if state.finished_at is not None:
        days.update(moment.astimezone(UTC).date() for moment in (state.finished_at - SETTLING, state.finished_at))
        days.update(table.days_with_alerts(connection, where, reviewed_since=state.finished_at - SETTLING))
    return sorted(days)


def _write_day(connection: Connection, folder: Path, where: AlertFilter, day: date, progress: Progress | None) -> int:
    """Replace the file of ``day``, and its hourly counts, with what the database holds for it now
    (or remove the day if nothing)."""
    target = partition(folder, day)
    counts_target = hourly.day_folder(folder, target.name)
    partial = target / f".{DAY_FILE}.partial"
    counts_partial = counts_target / f".{hourly.FILE}.partial"
    written = 0
    writer: DayWriter | None = None
    counts = hourly.HourlyCounts()
    try:
        for batch in table.batches(connection, table.day_filter(where, day)):
            if writer is None:
                target.mkdir(exist_ok=True)
                writer = DayWriter(partial)
            writer.write(batch)
            counts.add(batch)
            written += batch.num_rows
            if progress is not None:
                progress(batch.num_rows)
        if writer is None:
            shutil.rmtree(target, ignore_errors=True)
            shutil.rmtree(counts_target, ignore_errors=True)
            return 0
        writer.close()
        counts_target.mkdir(parents=True, exist_ok=True)
        counts.write(counts_partial)
        # The day, then its counts at once: a query reads one or the other (relay.history.analytics).
        partial.replace(target / DAY_FILE)
        counts_partial.replace(counts_target / hourly.FILE)
    finally:
        if writer is not None:
            writer.close()
        partial.unlink(missing_ok=True)
        counts_partial.unlink(missing_ok=True)
    return written


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
