"""The database: migrations match the models, and the CLI shares it with a running relay."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from relay.store import Store
from relay.store.models import Base
from relay.store.search import include_name
from relay.wire import AlertIn
from tests.support import RelayHarness, running_relay


async def test_migrations_build_exactly_the_models(database_url: str) -> None:
    store = await Store.open(database_url)
    try:
        async with store.engine.connect() as connection:
            differences = await connection.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"include_name": include_name}), Base.metadata
                )
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


async def test_relay_report_writes_a_self_contained_page(sqlite_url: str, tmp_path: Path) -> None:
    """The CLI's report: the analytics copy beside the database brought up to date, drawn offline."""
    async with running_relay(sqlite_url, ping_interval=0) as relay:
        _, token = await relay.user("heidi")
        stream_id = await relay.stream(token, "Loading dock")
        ml = await relay.consumer(token, stream_id, consumes=[], produces=["alert"])
        for severity, message in [("critical", "smoke <b>near</b> exit"), ("low", "motion"), ("high", "person")]:
            metadata = {"confidence": 0.8, "objectType": message.split()[0]}
            await ml.send(
                {"type": "alert", "streamId": stream_id, "severity": severity, "message": message, "metadata": metadata}
            )
            await ml.expect("alert-stored")
        out = tmp_path / "report.html"
        await run_cli("report", "--out", str(out), "--database-url", sqlite_url)
        page = out.read_text()
        assert "<script" in page
        assert not re.search(r"<script[^>]*\bsrc=", page), "BokehJS is inlined: the page needs no network"
        # The texts live in the page's document JSON, HTML-escaped once more by Bokeh.
        assert "&lt;b&gt;3&lt;/b&gt; on 1 streams" in page, "the summary counts the alerts"
        assert "smoke &amp;lt;b&amp;gt;near" in page, "messages are escaped in the table of serious alerts"
        assert f"Loading dock ({stream_id})" in page, "streams are labelled by device name"
        assert "Severity mix by stream" in page
        assert "Detector confidence by object type" in page
        empty = tmp_path / "empty.html"
        await run_cli("report", "--out", str(empty), "--since", "2999-01-01T00:00:00Z", "--database-url", sqlite_url)
        assert "no alerts in this window" in empty.read_text()


async def test_two_nodes_storing_one_streams_alerts_commit_them_in_order(database_url: str) -> None:
    """A reader replaying "what came after the last one I saw" while two nodes store alerts never sees a gap.

    Each node is a Store of its own (its own engine and connections); the
    reader runs the replay query of ``sinceAlertId`` in a loop and must see the
    stream's alerts as 1, 2, 3 … with nothing appearing later behind it.
    """
    nodes = [await Store.open(database_url), await Store.open(database_url)]
    reader = await Store.open(database_url)
    try:
        issued = await reader.users.add_or_issue_token("ordered")
        stream = await reader.streams.register(issued.user_id, "cam", "mobile", {})
        writers_done = asyncio.Event()

        async def write(node: Store, lane: str) -> None:
            for index in range(25):
                await node.alerts.add(AlertIn(stream.id, "low", f"{lane}-{index}", {}, 1, f"{lane}-{index}"))

        async def read() -> list[int]:
            seen: list[int] = []
            while True:
                done = writers_done.is_set()
                after = seen[-1] if seen else 0
                seen += [row.stream_seq for row in await reader.alerts.after(stream.id, after, limit=1000)]
                if done:
                    return seen
                await asyncio.sleep(0)

        reading = asyncio.ensure_future(read())
        await asyncio.gather(*(write(node, f"{n}.{lane}") for lane in range(4) for n, node in enumerate(nodes)))
        writers_done.set()
        seen = await reading
        assert seen == list(range(1, 201)), "every alert seen once, in the order of its stream, none skipped"
    finally:
        for store in [*nodes, reader]:
            await store.close()
