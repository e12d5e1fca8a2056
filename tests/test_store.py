"""The database: migrations match the models, and the CLI shares it with a running relay."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pandas as pd
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from relay.protocol import AlertIn
from relay.store import Store
from relay.store.models import Base
from tests.support import RelayHarness


async def test_migrations_build_exactly_the_models(database_url: str) -> None:
    store = await Store.open(database_url)
    try:
        async with store.engine.connect() as connection:
            differences = await connection.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
            )
        assert differences == []
        await Store.open(database_url)  # migrating an up-to-date database is a no-op
    finally:
        await store.close()


async def test_a_ref_races_into_the_database_once(database_url: str) -> None:
    store = await Store.open(database_url)
    try:
        issued = await store.users.add_or_issue_token("racer")
        stream = await store.streams.register(issued.user_id, "cam", "mobile", {})
        alert = AlertIn(stream.id, "low", "m", {}, 1, "dup")
        results = await asyncio.gather(*(store.alerts.add(alert) for _ in range(5)))
        assert len({r.alert.id for r in results}) == 1
        assert sum(r.created for r in results) == 1
    finally:
        await store.close()


async def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "relay", *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await process.communicate()
    result = subprocess.CompletedProcess(args, process.returncode or 0, out.decode(), err.decode())
    assert result.returncode == 0, result.stderr
    return result


async def test_the_cli_works_on_the_database_of_a_running_relay(relay: RelayHarness, tmp_path: Path) -> None:
    url = relay.relay.settings.database_url
    created = await run_cli("users", "add", "grace", "--database-url", url)
    token = created.stdout.strip().splitlines()[-1]
    stream_id = await relay.stream(token)  # the running relay accepts the CLI's token at once
    ml = await relay.consumer(token, stream_id, consumes=[], produces=["alert"])
    for index in range(3):
        await ml.send({"type": "alert", "streamId": stream_id, "severity": "high", "message": f"m{index}"})
        await ml.expect("alert-stored")

    out = tmp_path / "alerts.parquet"
    await run_cli("export", "--format", "parquet", "--out", str(out), "--user", "grace", "--database-url", url)
    frame = pd.read_parquet(out)
    assert list(frame["message"]) == ["m0", "m1", "m2"]
    csv = tmp_path / "alerts.csv"
    await run_cli("export", "--format", "csv", "--out", str(csv), "--stream", stream_id, "--database-url", url)
    assert len(pd.read_csv(csv)) == 3
