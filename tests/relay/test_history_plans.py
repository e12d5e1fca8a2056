"""History queries keep fast plans after a bulk import, because statistics are kept current.

A bulk import (Core inserts, as ``benchmarks.history_rest`` seeds) leaves the
database without statistics for the new rows: PostgreSQL here has no
autovacuum, SQLite never gathers any by itself.  The next process to open the
store analyses it; these tests read the plans the relay's own queries get then.
Plans, not times: a shared machine gives no stable times.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from benchmarks.history_rest import seed
from relay.store import AlertFilter, Store
from relay.store.alerts import _filtered
from relay.store.models import Alert, User
from tests.support import GUARD, running_relay, statements

IMPORTED = 20_000


async def plan_of_page(store: Store, where: AlertFilter, before_seq: int) -> str:
    """The database's plan for the query :meth:`Alerts.page` sends for this page."""
    with statements(store.engine) as sent:
        await store.alerts.page(where, limit=51, before_seq=before_seq)
    (statement, parameters) = next((s, p) for s, p in sent if s.lstrip().startswith("SELECT alert.seq"))
    explain = "EXPLAIN QUERY PLAN " if store.engine.dialect.name == "sqlite" else "EXPLAIN "
    async with store.engine.connect() as connection:
        rows = (await connection.exec_driver_sql(explain + statement, parameters)).all()
    return "\n".join(str(row[-1] if store.engine.dialect.name == "sqlite" else row[0]) for row in rows)


async def test_a_bulk_import_is_analysed_when_the_store_opens_and_page_two_plans_fast(database_url: str) -> None:
    await seed(database_url, IMPORTED, progress=False)
    store = await Store.open(database_url)
    try:
        assert not await store.statistics.stale(), "opening the store analysed the import"
        async with store.engine.connect() as connection:
            user_id = await connection.scalar(select(User.id))
        second_page = IMPORTED - 50
        if store.engine.dialect.name == "postgresql":
            plan = await plan_of_page(store, AlertFilter(user_id=user_id), second_page)
            assert "Index Scan Backward using alert_pkey on alert" in plan, plan
            assert "Sort" not in plan, plan
            assert "Seq Scan on alert" not in plan, plan
        else:
            plan = await plan_of_page(store, AlertFilter(user_id=user_id, text="garage"), second_page)
            first, *_ = plan.splitlines()
            assert first.startswith("SCAN alert_text VIRTUAL TABLE"), plan  # the FTS5 matches, newest first
            assert "TEMP B-TREE" not in plan, plan
    finally:
        await store.close()


async def test_the_relay_analyses_what_was_imported_while_it_runs(database_url: str) -> None:
    async with running_relay(database_url, ping_interval=0, statistics_interval=0.2) as harness:
        await seed(database_url, IMPORTED, progress=False)
        statistics = harness.relay.store.statistics
        async with asyncio.timeout(GUARD):  # the relay checks every 0.2 s
            while True:
                if not await statistics.stale():
                    break
                await asyncio.sleep(0.05)


@pytest.mark.parametrize("narrowed", ["", "objectType", "streamId"])
async def test_every_page_of_a_time_window_and_its_last_reads_the_time_index(database_url: str, narrowed: str) -> None:
    """With the cursor a bound parameter, SQLite walked the primary key down from it and tested each alert's
    time: a window's last page (fewer than a page left) read every alert older than the window, to the
    table's start (90 ms at 1M in ``benchmarks.history_rest``).  With an object type or a stream it read
    that filter's index the same way (68 ms), and PostgreSQL walked its primary key down for all three
    (78–195 ms).  The window now comes from its time index on both, whatever else narrows it."""
    await seed(database_url, IMPORTED, progress=False)
    store = await Store.open(database_url)
    try:
        async with store.engine.connect() as connection:
            user_id = await connection.scalar(select(User.id))
            oldest = await connection.scalar(select(func.min(Alert.created_at)))
            biggest = select(Alert.stream_id).group_by(Alert.stream_id).order_by(func.count().desc()).limit(1)
            stream_id = await connection.scalar(biggest)
        since = oldest + timedelta(days=10)
        where = AlertFilter(
            user_id=user_id,
            since=since,
            until=since + timedelta(days=1),
            object_type="car" if narrowed == "objectType" else None,
            stream_ids=[stream_id] if narrowed == "streamId" else (),
        )
        window = _filtered(where).with_only_columns(Alert.seq).order_by(Alert.seq.desc())
        async with store.engine.connect() as connection:
            expected = list((await connection.execute(window)).scalars())
        assert len(expected) > 60
        read: list[int] = []
        before: int | None = None
        while True:
            page = await store.alerts.page(where, limit=50, before_seq=before)
            read.extend(alert.seq for alert in page)
            if len(page) < 50:
                break
            before = page[-1].seq
        assert read == expected, "every alert of the window once, newest first"
        plan = await plan_of_page(store, where, expected[-10])  # the last page: 9 alerts left
        assert "ix_alert_created" in plan, plan
        for walked in ("rowid<", "ix_alert_object_type_seq", "ix_alert_stream_seq", "Backward using alert_pkey"):
            assert walked not in plan, plan
    finally:
        await store.close()
