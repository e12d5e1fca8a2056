"""Schema migrations upgrade databases that hold data, on SQLite and PostgreSQL.

Each test builds a database at an older revision with Alembic, fills it with
rows as that revision's relay wrote them, upgrades it to the newest revision the
way a relay does when it starts, and checks the data came through.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import text

from relay.identity.credentials import token_hash
from relay.store import AlertFilter, Snapshot, Store
from relay.store.alerts import Review
from relay.store.database import alembic_config, create_engine
from relay.wire import AlertIn
from tests.support import postgres_schema, service_url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        return
    async with postgres_schema(service_url("RELAY_TEST_POSTGRES_URL", "PostgreSQL")) as url:
        yield url


async def at_revision(url: str, revision: str, *statements: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(lambda sync: command.upgrade(alembic_config(sync), revision))
        for statement in statements:
            await connection.execute(text(statement))
    await engine.dispose()


async def test_0002_numbers_each_streams_existing_alerts_in_storage_order(empty_database_url: str) -> None:
    alert = (
        'INSERT INTO alert (id, "streamId", severity, message, metadata, timestamp, "createdAt") '
        "VALUES ('{id}', '{stream}', 'low', 'm', '{{}}', 1, '2026-11-30 10:00:00')"
    )
    await at_revision(
        empty_database_url,
        "0001",
        """INSERT INTO "user" (id, username, "createdAt") VALUES ('user_a', 'ana', '2026-11-30 10:00:00')""",
        *(
            'INSERT INTO video_stream (id, "userId", "deviceName", "deviceType", status, metadata, "createdAt", '
            f"\"updatedAt\") VALUES ('{stream}', 'user_a', 'cam', 'mobile', 'offline', '{{}}', "
            "'2026-11-30 10:00:00', '2026-11-30 10:00:00')"
            for stream in ("stream_a", "stream_b", "stream_empty")
        ),
        *(alert.format(id=f"alert_{n}", stream=f"stream_{s}") for n, s in enumerate("abaab")),
    )
    await at_revision(empty_database_url, "0001")  # idempotent: nothing to do
    store = await Store.open(empty_database_url)  # upgrades to the newest revision, as a relay does
    try:
        for stream, expected in (("a", ["alert_0", "alert_2", "alert_3"]), ("b", ["alert_1", "alert_4"])):
            numbered = await store.alerts.after(f"stream_{stream}", 0, limit=10)
            assert [(row.id, row.stream_seq) for row in numbered] == [(i, n + 1) for n, i in enumerate(expected)]
        added = await store.alerts.add(AlertIn("stream_a", "high", "new", {}, 2))
        assert added.alert.stream_seq == 4, "numbering goes on where the migration left it"
        first = await store.alerts.add(AlertIn("stream_empty", "high", "first", {}, 2))
        assert first.alert.stream_seq == 1
    finally:
        await store.close()


async def test_0004_gives_existing_alerts_their_object_type_and_a_text_index(empty_database_url: str) -> None:
    alert = (
        'INSERT INTO alert (id, "streamId", "streamSeq", severity, message, metadata, timestamp, "createdAt") '
        "VALUES ('{id}', 'stream_a', {n}, 'low', '{message}', '{metadata}', 1, '2026-12-01 10:00:00')"
    )
    rows = [
        ("Person at the front door", '{"objectType": "person", "confidence": 0.9}'),
        ("Car in the driveway", '{"objectType": "car"}'),
        ("Motion in the garden", "{}"),
        ("A long one", '{"objectType": "' + "x" * 201 + '"}'),
        ("A number", '{"objectType": 5}'),
    ]
    await at_revision(
        empty_database_url,
        "0003",
        """INSERT INTO "user" (id, username, "createdAt") VALUES ('user_a', 'ana', '2026-12-01 10:00:00')""",
        'INSERT INTO video_stream (id, "userId", "deviceName", "deviceType", status, metadata, "createdAt", '
        "\"updatedAt\", \"lastAlertSeq\") VALUES ('stream_a', 'user_a', 'cam', 'mobile', 'offline', '{}', "
        "'2026-12-01 10:00:00', '2026-12-01 10:00:00', 5)",
        *(
            alert.format(id=f"alert_{n}", n=n + 1, message=message, metadata=metadata)
            for n, (message, metadata) in enumerate(rows)
        ),
    )
    store = await Store.open(empty_database_url)  # upgrades to the newest revision, as a relay does
    try:
        async with store.engine.connect() as connection:
            kept = (await connection.execute(text('SELECT id, "objectType" FROM alert ORDER BY seq'))).all()
        assert [tuple(row) for row in kept] == [
            ("alert_0", "person"),
            ("alert_1", "car"),
            ("alert_2", None),
            ("alert_3", None),  # longer than any filter: only the metadata has it
            ("alert_4", None),  # not a string: the relay never stored such, and no filter is a number
        ]

        async def ids(**fields: Any) -> list[str]:
            page = await store.alerts.search(AlertFilter(user_id="user_a", **fields), limit=10)
            return [row.id for row in page.alerts]

        assert await ids(object_type="car") == ["alert_1"]
        assert await ids(object_type="x" * 201) == ["alert_3"]
        assert await ids(text="FRONT DOOR") == ["alert_0"], "existing messages are in the text index"
        added = await store.alerts.add(AlertIn("stream_a", "high", "Car at the front door", {"objectType": "car"}, 2))
        assert await ids(text="front door") == [added.alert.id, "alert_0"]
        assert await ids(object_type="car") == [added.alert.id, "alert_1"]
        assert await store.alerts.count(AlertFilter(text="the")) == 4
    finally:
        await store.close()


async def test_0005_leaves_existing_alerts_unreviewed_and_without_snapshots(empty_database_url: str) -> None:
    await at_revision(
        empty_database_url,
        "0004",
        """INSERT INTO "user" (id, username, "createdAt") VALUES ('user_a', 'ana', '2026-12-01 10:00:00')""",
        'INSERT INTO video_stream (id, "userId", "deviceName", "deviceType", status, metadata, "createdAt", '
        "\"updatedAt\", \"lastAlertSeq\") VALUES ('stream_a', 'user_a', 'cam', 'mobile', 'offline', '{}', "
        "'2026-12-01 10:00:00', '2026-12-01 10:00:00', 2)",
        *(
            'INSERT INTO alert (id, "streamId", "streamSeq", severity, message, metadata, timestamp, "createdAt") '
            f"VALUES ('alert_{n}', 'stream_a', {n}, 'high', 'Person {n}', '{{}}', {n}, '2026-12-01 10:00:0{n}')"
            for n in (1, 2)
        ),
    )
    store = await Store.open(empty_database_url)  # upgrades to the newest revision, as a relay does
    try:
        old = await store.alerts.get("alert_1", "user_a")
        assert old is not None
        assert (old.reviewed, old.false_positive, old.keep, old.has_snapshot, old.frame_timestamp) == (
            False,
            False,
            False,
            False,
            None,
        )
        assert await store.alerts.unreviewed("user_a") == 2
        reviewed = await store.alerts.review("alert_2", "user_a", Review("ana", false_positive=True))
        assert reviewed is not None
        assert (reviewed.reviewed, reviewed.reviewed_by) == (True, "ana")
        assert await store.alerts.unreviewed("user_a") == 1
        added = await store.alerts.add(
            AlertIn("stream_a", "high", "new", {}, 3, frame_timestamp=3), snapshot=Snapshot(b"\xff\xd8 jpeg", 3)
        )
        assert added.alert.stream_seq == 3
        assert await store.alerts.snapshot(added.alert.id, "user_a") == b"\xff\xd8 jpeg"
        assert await store.alerts.snapshot("alert_1", "user_a") is None
        found = await store.alerts.search(AlertFilter(user_id="user_a", text="person 1"), limit=5)
        assert [alert.id for alert in found.alerts] == ["alert_1"], "the text index of 0004 still works"
    finally:
        await store.close()


async def test_0006_keeps_existing_tokens_working_without_a_prefix(empty_database_url: str) -> None:
    old_token = "vr_" + "A" * 43
    await at_revision(
        empty_database_url,
        "0005",
        """INSERT INTO "user" (id, username, "createdAt") VALUES ('user_a', 'ana', '2026-12-01 10:00:00')""",
        f"""INSERT INTO api_token ("userId", "tokenHash", "createdAt")
            VALUES ('user_a', '{token_hash(old_token)}', '2026-12-01 10:00:00')""",
    )
    store = await Store.open(empty_database_url)  # upgrades to the newest revision, as a relay does
    try:
        assert await store.users.user_for_token(old_token) == "user_a"
        new_token = await store.users.issue_token("user_a")
        tokens = await store.users.tokens_of("user_a")
        assert (
            [(token.prefix, token.last_used_at is not None) for token in tokens]
            == [
                (None, True),  # verified a moment ago
                (new_token[3:11], False),
            ]
        )
        assert [token.token_hash for token in await store.users.tokens_with_prefix(new_token[:7])] == [
            token_hash(new_token)
        ]
        revoked = await store.users.revoke_all("user_a")
        assert sorted(revoked) == sorted([token_hash(old_token), token_hash(new_token)])
        assert await store.users.user_for_token(old_token) is None
    finally:
        await store.close()


async def test_0007_adds_the_retention_job_due_at_once(empty_database_url: str) -> None:
    await at_revision(
        empty_database_url,
        "0006",
        """INSERT INTO "user" (id, username, "createdAt") VALUES ('user_a', 'ana', '2026-12-01 10:00:00')""",
        'INSERT INTO video_stream (id, "userId", "deviceName", "deviceType", status, metadata, "createdAt", '
        "\"updatedAt\", \"lastAlertSeq\") VALUES ('stream_a', 'user_a', 'cam', 'mobile', 'offline', '{}', "
        "'2026-12-01 10:00:00', '2026-12-01 10:00:00', 1)",
        'INSERT INTO alert (id, "streamId", "streamSeq", severity, message, metadata, timestamp, "createdAt") '
        "VALUES ('alert_1', 'stream_a', 1, 'high', 'old', '{}', 1, '2020-01-01 10:00:00')",
    )
    store = await Store.open(empty_database_url)  # upgrades to the newest revision, as a relay does
    try:
        assert await store.jobs.claim("retention", timedelta(days=1)), "never ran: due"
        pruned = await store.jobs.prune(datetime(2021, 1, 1, tzinfo=UTC))
        assert (pruned.deleted, pruned.days) == (1, [date(2020, 1, 1)])
    finally:
        await store.close()


def test_the_schema_revision_the_store_knows_is_alembics_head() -> None:
    """A database at SCHEMA_REVISION is not handed to Alembic: a new migration must move it too."""
    from alembic.script import ScriptDirectory

    from relay.store.database import SCHEMA_REVISION

    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == SCHEMA_REVISION


def test_a_command_on_a_current_database_does_not_import_alembic(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'relay.db'}"
    program = (
        "import asyncio, sys\n"
        "from relay.store import Store\n"
        "async def main():\n"
        "    await (await Store.open(sys.argv[1])).close()\n"
        "asyncio.run(main())\n"
        "print('alembic' in sys.modules)\n"
    )
    first = subprocess.run([sys.executable, "-c", program, url], capture_output=True, text=True, check=True)
    again = subprocess.run([sys.executable, "-c", program, url], capture_output=True, text=True, check=True)
    assert (first.stdout.strip(), again.stdout.strip()) == ("True", "False"), "migrated once, then left alone"
