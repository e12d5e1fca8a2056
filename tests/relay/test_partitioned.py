"""The partitioned copy: Hive-style days of Parquet, written once, then only what changed."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine, delete

from benchmarks.history_data import seed
from relay.history import hourly, partitioned, table
from relay.store import AlertFilter, Store
from relay.store.alerts import Review
from relay.store.database import create_sync_engine
from relay.store.models import Alert
from relay.wire import AlertIn

START = datetime(2026, 10, 1, tzinfo=UTC)


def _files(folder: Path) -> dict[str, int]:
    """Each day's file and its inode (a rewrite makes a new one)."""
    return {path.parent.name: path.stat().st_ino for path in sorted(folder.glob("date=*/alerts.parquet"))}


async def _add(database_url: str, stream_id: str, when: datetime, count: int) -> None:
    store = await Store.open(database_url)
    try:
        for index in range(count):
            alert = AlertIn(stream_id, "high", f"late {index}", {"objectType": "car"}, timestamp=1)
            await store.alerts.add(alert, created_at=when + timedelta(seconds=index))
    finally:
        await store.close()


def test_a_second_run_writes_only_what_changed(engine: Engine, database_url: str, tmp_path: Path) -> None:
    seeded = seed(engine, 3_000, streams=3, days=3, bursts=0, start=START)
    other = seed(engine, 500, streams=1, days=3, bursts=0, start=START, username="someone_else")
    folder = tmp_path / "copy"
    where = AlertFilter(user_id=seeded.user_id)
    assert partitioned.count_pending(engine, folder, where) == seeded.alerts

    first = partitioned.refresh(engine, folder, where)
    assert first.days_written == [date(2026, 10, 1), date(2026, 10, 2), date(2026, 10, 3)]
    assert first.alerts_written == seeded.alerts
    days = _files(folder)
    assert list(days) == ["date=2026-10-01", "date=2026-10-02", "date=2026-10-03"]
    copy = (
        duckdb.connect()
        .execute(
            f"SELECT count(*), count(DISTINCT id), min(userId), max(userId) "
            f"FROM read_parquet('{folder}/**/*.parquet', hive_partitioning = true)"
        )
        .fetchall()
    )
    assert copy == [(seeded.alerts, seeded.alerts, seeded.user_id, seeded.user_id)], "only this user's, each once"
    day_two = pq.read_table(folder / "date=2026-10-02" / "alerts.parquet").to_pydict()
    assert {stored.date() for stored in day_two["createdAt"]} == {date(2026, 10, 2)}
    assert day_two["seq"] == sorted(day_two["seq"])

    again = partitioned.refresh(engine, folder, where)
    assert again.alerts_written == 0, "nothing new: the days of the last run's end (today) hold nothing"
    assert _files(folder) == days, "no old day rewritten"

    asyncio.run(_add(database_url, seeded.stream_ids[0], START + timedelta(days=3, hours=2), 7))  # a new day
    asyncio.run(_add(database_url, seeded.stream_ids[1], START + timedelta(hours=5), 2))  # an import into day one
    asyncio.run(_add(database_url, other.stream_ids[0], START + timedelta(days=1), 3))  # another user's
    third = partitioned.refresh(engine, folder, where)
    assert date(2026, 10, 2) not in third.days_written
    assert {date(2026, 10, 1), date(2026, 10, 4)} <= set(third.days_written)
    after = _files(folder)
    assert after["date=2026-10-02"] == days["date=2026-10-02"], "an untouched day keeps its file"
    assert after["date=2026-10-01"] != days["date=2026-10-01"], "the day that got an import is written again"
    assert pq.read_table(folder / "date=2026-10-04" / "alerts.parquet").num_rows == 7
    total = duckdb.connect().execute(f"SELECT count(*) FROM read_parquet('{folder}/**/*.parquet')").fetchone()
    assert total == (seeded.alerts + 9,)
    assert not list(folder.rglob("*.partial"))
    _assert_counts_are_the_days(folder)


def _assert_counts_are_the_days(folder: Path) -> None:
    """Every day file has its hourly counts beside it (relay.history.hourly), and they count what it holds."""
    keys = "hour, userId, streamId, severity, objectType, reviewed, falsePositive"
    counted, counts = (
        sorted(duckdb.connect().execute(sql).fetchall())
        for sql in (
            f"SELECT epoch_us(createdAt) // 3600000000 AS hour, userId, streamId, severity::VARCHAR, objectType, "
            f"reviewed, falsePositive, count(*) FROM read_parquet('{folder}/date=*/*.parquet') GROUP BY ALL",
            f"SELECT {keys}, alerts FROM read_parquet('{folder}/{hourly.FOLDER}/date=*/{hourly.FILE}')",
        )
    )
    assert counts == counted
    days = {path.parent.name for path in folder.glob(f"date=*/{partitioned.DAY_FILE}")}
    assert {path.parent.name for path in (folder / hourly.FOLDER).glob(f"date=*/{hourly.FILE}")} == days


def test_days_read_in_one_pass_keep_each_alert_on_its_day(
    engine: Engine, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run reads its consecutive days in one pass and splits the rows by day: alerts stored later (higher
    ``seq``) on an earlier day, and alerts either side of midnight, each land in their own day's file, also
    when more days than one pass reads are written."""
    monkeypatch.setattr(partitioned, "DAYS_PER_PASS", 3)
    seeded = seed(engine, 1_500, streams=2, days=5, bursts=0, start=START)
    midnight = START + timedelta(days=1)
    asyncio.run(_add(database_url, seeded.stream_ids[0], midnight - timedelta(microseconds=1), 1))
    asyncio.run(_add(database_url, seeded.stream_ids[0], midnight, 1))
    asyncio.run(_add(database_url, seeded.stream_ids[1], START + timedelta(hours=3), 4))  # day one, stored last
    monkeypatch.setattr(table, "batches", partial(table.batches, rows_per_batch=97))  # days across batches
    folder = tmp_path / "copy"
    where = AlertFilter(user_id=seeded.user_id)
    assert partitioned.count_pending(engine, folder, where) == seeded.alerts + 6

    done = partitioned.refresh(engine, folder, where)
    assert done.alerts_written == seeded.alerts + 6
    assert done.days_written == [START.date() + timedelta(days=day) for day in range(5)]
    for day in done.days_written:
        rows = pq.read_table(partitioned.partition(folder, day) / partitioned.DAY_FILE).to_pydict()
        assert {stored.date() for stored in rows["createdAt"]} == {day}
        assert rows["seq"] == sorted(rows["seq"]), "storage order within a day"
    day_one = pq.read_table(partitioned.partition(folder, date(2026, 10, 1)) / partitioned.DAY_FILE)
    with engine.connect() as connection:  # what the database holds for day one, by its own SQL
        stored = table.count(connection, AlertFilter(user_id=seeded.user_id, since=START, until=midnight))
    assert day_one.num_rows == stored
    assert sum(message.startswith("late") for message in day_one.column("message").to_pylist()) == 5
    total = duckdb.connect().execute(f"SELECT count(*), count(DISTINCT id) FROM read_parquet('{folder}/**/*.parquet')")
    assert total.fetchone() == (seeded.alerts + 6, seeded.alerts + 6)
    _assert_counts_are_the_days(folder)

    with engine.begin() as connection:  # the middle day emptied: a run over three days removes it alone
        connection.execute(
            delete(Alert).where(Alert.created_at >= midnight, Alert.created_at < midnight + timedelta(1))
        )
    again = partitioned.rewrite_days(engine, folder, where, [date(2026, 10, 1), date(2026, 10, 2), date(2026, 10, 3)])
    assert list(_files(folder)) == ["date=2026-10-01", *(f"date=2026-10-0{day}" for day in range(3, 6))]
    assert pq.read_table(partitioned.partition(folder, date(2026, 10, 1)) / partitioned.DAY_FILE).num_rows == (
        day_one.num_rows
    )
    assert (
        again.alerts_written
        == day_one.num_rows
        + pq.read_metadata(partitioned.partition(folder, date(2026, 10, 3)) / partitioned.DAY_FILE).num_rows
    )
    assert not list(folder.rglob("*.partial"))
    _assert_counts_are_the_days(folder)


def test_a_folder_keeps_to_its_filter(engine: Engine, tmp_path: Path) -> None:
    seeded = seed(engine, 200, streams=2, days=1, bursts=0, start=START)
    folder = tmp_path / "mine"
    partitioned.refresh(engine, folder, AlertFilter(user_id=seeded.user_id))
    with pytest.raises(partitioned.FolderInUse, match="another filter"):
        partitioned.refresh(engine, folder, AlertFilter())
    stranger = tmp_path / "photos"
    stranger.mkdir()
    (stranger / "holiday.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(partitioned.FolderInUse, match="holds no export"):
        partitioned.refresh(engine, stranger, AlertFilter())
    assert [path.name for path in stranger.iterdir()] == ["holiday.jpg"]


def test_a_day_whose_alerts_are_gone_is_removed(engine: Engine, tmp_path: Path) -> None:
    seeded = seed(engine, 300, streams=1, days=2, bursts=0, start=START)
    folder = tmp_path / "copy"
    where = AlertFilter(user_id=seeded.user_id)
    partitioned.refresh(engine, folder, where)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "DELETE FROM alert WHERE \"createdAt\" >= '2026-10-02'"
            if engine.dialect.name == "sqlite"
            else "DELETE FROM alert WHERE \"createdAt\" >= '2026-10-02T00:00:00Z'"
        )
    partitioned.rewrite_days(engine, folder, where, [date(2026, 10, 2)])
    assert list(_files(folder)) == ["date=2026-10-01"]
    _assert_counts_are_the_days(folder)


async def test_relay_export_partitioned(sqlite_url: str, tmp_path: Path) -> None:
    engine = create_sync_engine(sqlite_url)
    seeded = await asyncio.to_thread(seed, engine, 400, streams=2, days=2, bursts=0, start=START)
    engine.dispose()
    folder = tmp_path / "copy"
    command = [sys.executable, "-m", "relay", "export", "--partitioned", str(folder), "--database-url", sqlite_url]
    process = await asyncio.create_subprocess_exec(*command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = await process.communicate()
    assert process.returncode == 0, err
    assert f"wrote {seeded.alerts} alerts on 2 days to {folder}" in err.decode()
    mixed = await asyncio.create_subprocess_exec(*command, "--format", "csv", stderr=subprocess.PIPE)
    _, err = await mixed.communicate()
    assert mixed.returncode == 2
    assert b"without --out and --format" in err


def test_a_run_rewrites_the_days_of_alerts_reviewed_since_the_last(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    seeded = seed(engine, 600, streams=2, days=3, bursts=0, start=START)
    folder = tmp_path / "copy"
    where = AlertFilter(user_id=seeded.user_id)
    partitioned.refresh(engine, folder, where)
    days = _files(folder)
    with engine.connect() as connection:
        alert_id = connection.exec_driver_sql(
            "SELECT id FROM alert WHERE \"createdAt\" < '2026-10-02' ORDER BY seq LIMIT 1"
        ).scalar_one()
    asyncio.run(_review(database_url, seeded.user_id, alert_id))

    again = partitioned.refresh(engine, folder, where)
    assert date(2026, 10, 1) in again.days_written
    assert date(2026, 10, 2) not in again.days_written
    assert _files(folder)["date=2026-10-02"] == days["date=2026-10-02"]
    reviewed = (
        duckdb.connect()
        .execute(
            f"SELECT id, reviewed, falsePositive, reviewedBy FROM read_parquet('{folder}/**/*.parquet') WHERE reviewed"
        )
        .fetchall()
    )
    assert reviewed == [(alert_id, True, True, "ana")]
    _assert_counts_are_the_days(folder)  # the review counted there too


async def _review(database_url: str, user_id: str, alert_id: str) -> None:
    store = await Store.open(database_url)
    try:
        assert await store.alerts.review(alert_id, user_id, Review("ana", false_positive=True)) is not None
    finally:
        await store.close()


def test_a_folder_of_an_older_layout_is_written_again_in_full(engine: Engine, tmp_path: Path) -> None:
    seeded = seed(engine, 200, streams=1, days=2, bursts=0, start=START)
    folder = tmp_path / "copy"
    where = AlertFilter(user_id=seeded.user_id)
    partitioned.refresh(engine, folder, where)
    state = folder / partitioned.STATE_FILE
    version = partitioned.STATE_VERSION
    state.write_bytes(state.read_bytes().replace(b'"version": %d' % version, b'"version": %d' % (version - 1)))
    assert partitioned.refresh(engine, folder, where).alerts_written == seeded.alerts
