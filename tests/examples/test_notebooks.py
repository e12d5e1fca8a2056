"""The notebooks run top to bottom against a live relay, as a user would run them."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import nbformat
import pytest
from footage import Footage, sample_path
from nbclient import NotebookClient

from tests.support import RelayHarness

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
