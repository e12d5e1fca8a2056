"""Exports that stream: the alerts of ``GET /api/alerts`` in every format, in batches, stopped by a leaving client."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import tracemalloc
from contextlib import aclosing
from pathlib import Path

import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine

from benchmarks.history_data import seed
from relay.history import export, table
from relay.history.formats import CsvEncoder
from relay.history.service import History, TooManyExports
from relay.store import AlertFilter, Snapshot, Store
from relay.wire import AlertIn
from tests.support import GUARD, RelayHarness


async def test_the_json_export_is_the_listed_alerts_oldest_first(relay: RelayHarness) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token, "Gate")
    ml = await relay.consumer(token, stream_id, consumes=[], produces=["alert"])
    metadata_kinds = [
        {"objectType": "person", "confidence": 0.91, "location": {"x": 0.1, "y": 0.2, "width": 0.3, "height": 0.4}},
        {"objectType": "car", "note": "naïve ☃ \u2028 text", "confidence": None},
        {"nested": {"deep": [1, 2, {"x": None}]}, "confidence": 1},
        {},
    ]
    for index in range(12):
        await ml.send(
            {
                "type": "alert",
                "streamId": stream_id,
                "severity": ["low", "high"][index % 2],
                "message": f"alert {index} «quoted»",
                "metadata": metadata_kinds[index % 4],
                **({"ref": f"r{index}"} if index % 3 == 0 else {}),
            }
        )
        await ml.expect("alert-stored")
    listed = (await relay.api("GET", "/api/alerts?limit=500", token=token)).json["alerts"]
    exported = await relay.api("GET", "/api/alerts/export?format=json", token=token)
    assert exported.status == 200
    assert orjson.loads(exported.body) == [{**alert, "deviceName": "Gate"} for alert in listed[::-1]], (
        "the same objects, field for field, oldest first, and the stream's name"
    )
    assert list(orjson.loads(exported.body)[0])[:3] == ["id", "streamId", "deviceName"], "beside the stream id"
    assert "chunked" in exported.headers.get("Transfer-Encoding", ""), "streamed, not buffered"

    parquet = pq.read_table(io.BytesIO((await relay.api("GET", "/api/alerts/export?format=parquet", token=token)).body))
    assert parquet.schema.equals(table.SCHEMA)
    rows = parquet.to_pylist()
    assert [row["id"] for row in rows] == [alert["id"] for alert in listed[::-1]]
    assert [row["confidence"] for row in rows[:4]] == [0.91, None, 1.0, None], "a number, or nothing"
    assert rows[0]["locationWidth"] == 0.3
    assert rows[0]["objectType"] == "person"
    assert rows[0]["deviceName"] == "Gate"
    assert [orjson.loads(row["metadata"]) for row in rows] == [alert["metadata"] for alert in listed[::-1]]

    csv = pd.read_csv(io.BytesIO((await relay.api("GET", "/api/alerts/export?format=csv", token=token)).body))
    assert list(csv["createdAt"]) == [alert["createdAt"] for alert in listed[::-1]], "times written as the API does"
    assert list(csv["message"]) == [alert["message"] for alert in listed[::-1]]
    assert set(csv["deviceName"]) == {"Gate"}


async def test_an_empty_export_is_a_valid_file_in_every_format(relay: RelayHarness) -> None:
    _, token = await relay.user()
    assert orjson.loads((await relay.api("GET", "/api/alerts/export?format=json", token=token)).body) == []
    empty = pq.read_table(io.BytesIO((await relay.api("GET", "/api/alerts/export?format=parquet", token=token)).body))
    assert empty.num_rows == 0
    assert empty.schema.equals(table.SCHEMA)
    header = (await relay.api("GET", "/api/alerts/export?format=csv", token=token)).body.decode()
    assert header.strip().split(",")[:3] == ['"seq"', '"id"', '"streamId"']


def test_a_big_export_is_written_in_batches_each_a_row_group(engine: Engine, tmp_path: Path) -> None:
    seeded = seed(engine, 2_600, streams=3, days=2, bursts=0)
    where = AlertFilter(user_id=seeded.user_id)
    written: list[int] = []
    out = tmp_path / "alerts.parquet"
    with engine.connect() as connection:
        assert table.count(connection, where) == seeded.alerts
    pieces = export.chunks(engine, where, "parquet", rows_per_batch=1_000, progress=written.append)
    out.write_bytes(b"".join(pieces))
    assert written == [1_000, 1_000, seeded.alerts - 2_000]
    metadata = pq.ParquetFile(out).metadata
    assert [metadata.row_group(index).num_rows for index in range(metadata.num_row_groups)] == written
    seqs = pq.read_table(out, columns=["seq"]).column("seq").to_pylist()
    assert seqs == sorted(set(seqs)), "oldest first, each once"
    assert len(seqs) == seeded.alerts

    one_stream = AlertFilter(user_id=seeded.user_id, stream_ids=[seeded.stream_ids[1]], severities=["high"])
    export.write(engine, one_stream, "csv", tmp_path / "one.csv")
    frame = pd.read_csv(tmp_path / "one.csv")
    assert set(frame["streamId"]) == {seeded.stream_ids[1]}
    assert set(frame["severity"]) == {"high"}
    assert not list(tmp_path.glob("*.partial"))


def test_a_batch_of_the_export_fits_its_memory_budget(engine: Engine) -> None:
    """:data:`table.ROWS_PER_BATCH` bounds an export's memory, and a batch of it must fit 100 MB of Python objects.

    ``relay export`` must stay under 400 MB (issue 10): about 115 MB are the
    imports, and RSS grows about twice what one batch holds (the allocator
    keeps what it freed).  The JSON export holds the most per row (rows,
    columns, one object per alert); at 50,000 rows a batch it peaked at 460 MB.
    Measured on small batches, once warm (SQLAlchemy's caches filled), per row.
    """
    seed(engine, 6_000, streams=3, days=2, bursts=0)
    small = 2_000
    for _ in export.chunks(engine, AlertFilter(), "json", rows_per_batch=small):
        pass  # warm: compiled statements and the like are not the batch's
    tracemalloc.start()
    try:
        for _ in export.chunks(engine, AlertFilter(), "json", rows_per_batch=small):
            pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    per_row = peak / small
    assert per_row * table.ROWS_PER_BATCH <= 100 * 2**20, f"{per_row:.0f} bytes a row × {table.ROWS_PER_BATCH}"


async def test_a_user_runs_at_most_two_exports_at_once(engine: Engine, database_url: str, tmp_path: Path) -> None:
    seeded = await asyncio.to_thread(seed, engine, 500, streams=2, days=1, bursts=0)
    history = History(database_url, tmp_path / "analytics")
    where = AlertFilter(user_id=seeded.user_id)
    try:
        async with (
            aclosing(history.export(where, "csv", owner="alice")) as first,
            aclosing(history.export(where, "csv", owner="alice")) as second,
        ):
            await anext(first)
            await anext(second)
            with pytest.raises(TooManyExports):
                await anext(history.export(where, "csv", owner="alice"))
            assert (await anext(history.export(where, "json", owner="bob")))[:1] == b"["
        assert [piece async for piece in history.export(where, "csv", owner="alice")]  # both ended: room again
    finally:
        await history.close()


async def test_a_client_that_leaves_stops_its_export(relay: RelayHarness) -> None:
    history = relay.relay.history
    seeded = await asyncio.to_thread(seed, history.engine, 30_000, streams=2, days=1, bursts=0, username="leaver")
    token = await relay.relay.store.users.issue_token(seeded.user_id)
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
    request = f"GET /api/alerts/export?format=json HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
    writer.write(request.encode())
    async with asyncio.timeout(GUARD):
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        await reader.readexactly(1000)  # the export is under way (30,000 alerts are several batches)
        assert history.running == 1
        writer.close()
        await history.idle()  # the relay noticed at its next write, and the export's thread stopped reading


async def test_relay_export_refuses_a_missing_database_and_folder(tmp_path: Path) -> None:
    nowhere = f"sqlite:///{tmp_path / 'nothing.db'}"
    missing = await _cli("export", "--format", "csv", "--out", str(tmp_path / "a.csv"), "--database-url", nowhere)
    assert missing.returncode != 0
    assert "there is no database at" in missing.stderr
    assert not (tmp_path / "nothing.db").exists(), "no empty database made"
    no_folder = await _cli("export", "--format", "csv", "--out", str(tmp_path / "no" / "a.csv"))
    assert no_folder.returncode != 0
    assert "there is no folder" in no_folder.stderr
    assert "Traceback" not in missing.stderr + no_folder.stderr


async def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "relay", *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await process.communicate()
    return subprocess.CompletedProcess(args, process.returncode or 0, out.decode(), err.decode())


async def test_an_export_that_fails_midway_is_cut_not_finished(
    relay: RelayHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    history = relay.relay.history
    seeded = await asyncio.to_thread(seed, history.engine, 3_000, streams=1, days=1, bursts=0, username="cut")
    token = await relay.relay.store.users.issue_token(seeded.user_id)
    encode = CsvEncoder.encode
    calls = 0

    def fail_on_the_second_batch(self: CsvEncoder, batch: pa.RecordBatch) -> bytes:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError("disk gone")  # as the database or a disk would fail
        return encode(self, batch)

    monkeypatch.setattr(CsvEncoder, "encode", fail_on_the_second_batch)
    monkeypatch.setattr("relay.history.service.EXPORT_ROWS_PER_BATCH", 1_000)
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
    request = f"GET /api/alerts/export?format=csv HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
    writer.write(request.encode())
    async with asyncio.timeout(GUARD):
        answer = await reader.read()  # until the relay closes the connection
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200")
    assert not answer.endswith(b"0\r\n\r\n"), "the chunked answer lacks its last chunk: the file is known to be cut"
    await history.idle()


async def test_relay_export_writes_the_snapshots_as_files_named_by_alert_id(database_url: str, tmp_path: Path) -> None:
    store = await Store.open(database_url)
    try:
        user = await store.users.add_or_issue_token("photographer", None)
        stream = await store.streams.register(user.user_id, "Gate", "mobile", {})
        pictures = {}
        for index in range(5):
            snapshot = Snapshot(b"\xff\xd8" + bytes([index]) * 100, index) if index != 2 else None
            stored = await store.alerts.add(AlertIn(stream.id, "high", f"m{index}", {}, index), snapshot=snapshot)
            if snapshot is not None:
                pictures[stored.alert.id] = snapshot.jpeg
    finally:
        await store.close()
    folder = tmp_path / "pictures"
    first = await _cli("export", "--snapshots", str(folder), "--user", "photographer", "--database-url", database_url)
    assert first.returncode == 0, first.stderr
    assert "wrote 4 snapshots" in first.stderr
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == {
        f"{alert_id}.jpg": jpeg for alert_id, jpeg in pictures.items()
    }
    out = tmp_path / "alerts.json"
    again = await _cli(
        "export", "--format", "json", "--out", str(out), "--snapshots", str(folder), "--database-url", database_url
    )
    assert again.returncode == 0, again.stderr
    assert "wrote 0 snapshots" in again.stderr
    assert "(4 already there)" in again.stderr
    exported = orjson.loads(out.read_bytes())
    assert {alert["id"] for alert in exported if alert["hasSnapshot"]} == set(pictures)
    nowhere = await _cli("export", "--snapshots", str(tmp_path / "no" / "pics"), "--database-url", database_url)
    assert nowhere.returncode != 0
    assert "there is no folder" in nowhere.stderr
