"""The notebooks run top to bottom against a live relay, as a user would run them."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nbformat
import pytest
from footage import Footage, sample_path
from nbclient import NotebookClient

from relay.wire import AlertIn
from tests.support import RelayHarness, running_relay

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@contextlib.asynccontextmanager
async def streaming_phone(relay: RelayHarness, token: str, stream_id: str) -> AsyncIterator[None]:
    """A phone streaming the car footage (a face) at 10 fps until the block ends."""
    phone = await relay.producer(token, stream_id)
    footage = Footage(sample_path("carphone"), width=320, quality=80)

    async def stream() -> None:
        while True:
            picture = await asyncio.to_thread(footage.capture)
            await phone.send_frame(stream_id, picture.jpeg, timestamp=picture.captured_ms)
            await asyncio.sleep(0.1)  # the phone's frame rate, not a wait for an event

    task = asyncio.create_task(stream())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        footage.close()


async def test_attach_ml_consumer_watches_a_stream_and_sends_an_alert(
    relay: RelayHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, token = await relay.user("analyst", password="pw")
    stream_id = await relay.stream(token, "Car phone")
    watcher = await relay.consumer(token, stream_id, consumes=["alert"])
    for name, value in {
        "RELAY_URL": relay.base,
        "RELAY_USERNAME": "analyst",
        "RELAY_PASSWORD": "pw",
        "RELAY_STREAM_ID": stream_id,
        "FRAMES": "15",
    }.items():
        monkeypatch.setenv(name, value)
    notebook = nbformat.read(NOTEBOOKS / "attach_ml_consumer.ipynb", as_version=4)
    async with streaming_phone(relay, token, stream_id):
        client = NotebookClient(
            notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
        )
        await client.async_execute(env=dict(os.environ))

    alert = await watcher.expect("alert", streamId=stream_id)
    assert alert["metadata"]["objectType"] == "face"
    assert alert["metadata"]["source"] == "notebooks/attach_ml_consumer.ipynb"
    printed = "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
    assert f"alert stored as {alert['id']}" in printed


async def test_alert_analytics_asks_the_relay_and_its_own_copy(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_relay(sqlite_url, ping_interval=0) as relay:
        _, token = await relay.user("analyst", password="pw")
        gate, dock = await relay.stream(token, "Gate"), await relay.stream(token, "Dock")
        start = datetime(2026, 11, 2, tzinfo=UTC)
        for hour in range(24 * 5):
            for stream, count in ((gate, 1 + hour % 3), (dock, 3 if hour == 100 else hour % 2)):
                for n in range(count * (15 if (stream, hour) == (dock, 100) else 1)):
                    metadata = {"objectType": ("person", "car")[n % 2], "confidence": 0.5 + (n % 5) / 10}
                    alert = AlertIn(stream, ("low", "high")[n % 2], "seen", metadata, timestamp=1)
                    await relay.relay.store.alerts.add(alert, created_at=start + timedelta(hours=hour, minutes=n))
        for name, value in {
            "RELAY_URL": relay.base,
            "RELAY_USERNAME": "analyst",
            "RELAY_PASSWORD": "pw",
            "RELAY_DATABASE_URL": sqlite_url,
            "ANALYTICS_COPY_DIR": str(tmp_path / "copy"),
        }.items():
            monkeypatch.setenv(name, value)
        notebook = nbformat.read(NOTEBOOKS / "alert_analytics.ipynb", as_version=4)
        client = NotebookClient(
            notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
        )
        await client.async_execute(env=dict(os.environ))

    printed = "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
    assert "the relay and your copy agree on the severity mix" in printed
    assert "second run: 0 alerts" in printed, "nothing new: the second run writes nothing"
    drawn = [output for cell in notebook.cells for output in cell.get("outputs", []) if "data" in output]
    assert any("application/vnd.bokehjs_exec.v0+json" in output["data"] for output in drawn), "the charts are drawn"
    assert list((tmp_path / "copy").glob("date=*/alerts.parquet"))
