"""Helpers for tests that drive the workbench in a real Chromium against a real relay.

:class:`WorkbenchServer` runs ``python -m workbench`` (the relay inside) as a
subprocess on a free port with its own SQLite database.  :class:`Phone` is a real
producer (WebSocket, binary JPEG frames made by OpenCV) on a thread, and
:func:`send_alert` is an ML client.  Waiting is always for an event (a health
check that answers, a message, a selector), under a generous guard timeout.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np
import pytest
import websocket
from playwright.sync_api import Page

from relay.clock import now_ms
from relay.store import Store
from relay.wire import AlertIn, encode_binary_frame
from tests.support import REQUIRE_SERVICES

T = TypeVar("T")

GUARD = 20.0
"""Seconds after which waiting for an event gives up (a hang, not a timing check)."""

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "correct horse"
PROJECT = Path(__file__).parents[2]


def chromium_path() -> str:
    """Debian's Chromium, or skip (fail in CI) without it."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        message = "Chromium not installed: `apt-get install -y chromium` to run the browser tests"
        if REQUIRE_SERVICES:
            pytest.fail(message + " (VIGIL_REQUIRE_SERVICES=1 forbids skipping)")
        pytest.skip(message)
    return path


def run_async(function: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion on a thread of its own.

    Playwright's synchronous API keeps an event loop in the test's thread, where
    ``asyncio.run`` may not start another one.
    """
    with ThreadPoolExecutor(max_workers=1) as executor:
        return executor.submit(asyncio.run, function()).result()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def http(method: str, url: str, *, token: str | None = None, body: Any = None) -> tuple[int, Any]:
    """A JSON request; returns (status, decoded body)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=GUARD) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def wait_until_healthy(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait for ``GET /api/health`` to answer 200 (the relay inside has started)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}:\n{log.read_text()}")
        try:
            if http("GET", base + "/api/health")[0] == 200:
                return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the server did not become healthy:\n{log.read_text()}")


class WorkbenchServer:
    """The workbench on a free port with a fresh database: ``python -m workbench``, or
    ``panel serve workbench`` with ``panel_serve_flags`` (run in the project folder, as documented)."""

    def __init__(self, folder: Path, *, panel_serve_flags: list[str] | None = None) -> None:
        self.folder = folder
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.database_url = f"sqlite+aiosqlite:///{folder / 'relay.db'}"
        if panel_serve_flags is None:
            self.command = [sys.executable, "-m", "workbench", "--port", str(self.port), "--address", "127.0.0.1"]
        else:
            panel = str(Path(sys.executable).with_name("panel"))
            self.command = [panel, "serve", "workbench", "--port", str(self.port), *panel_serve_flags]
        self.log = folder / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "RELAY_DATABASE_URL": self.database_url,
            "RELAY_PING_INTERVAL": "0",
            "WORKBENCH_SECRET_FILE": str(self.folder / "cookie-secret"),
        }

    def start(self) -> WorkbenchServer:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.command, stdout=log, stderr=subprocess.STDOUT, env=self.environment(), cwd=PROJECT
            )
        wait_until_healthy(self.base, self.process, self.log)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=GUARD)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def user(self, prefix: str = "analyst") -> Analyst:
        """A new user with :data:`PASSWORD`, and a bearer token for their phones and ML clients."""
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"

        async def add() -> str:
            store = await Store.open(self.database_url)
            try:
                return (await store.users.add_or_issue_token(name, PASSWORD)).token
            finally:
                await store.close()

        return Analyst(self, name, run_async(add))


class Analyst:
    """A user of a running workbench: their name, password and token."""

    def login(self, page: Page, path: str = "/workbench") -> None:
        """Log in through the login form and wait for the workbench to know the analyst."""
        page.goto(self.server.base + path)
        page.fill("input[name=username]", self.name)
        page.fill("input[name=password]", self.password)
        page.click("button[type=submit], input[type=submit]")
        page.locator(".analyst", has_text=self.name).wait_for()

    def __init__(self, server: WorkbenchServer, name: str, token: str) -> None:
        self.server = server
        self.name = name
        self.password = PASSWORD
        self.token = token

    def register(self, device_name: str) -> str:
        status, body = http(
            "POST", self.server.base + "/api/streams/register", token=self.token, body={"deviceName": device_name}
        )
        assert status == 201, body
        stream_id: str = body["streamId"]
        return stream_id


def colour_frame(colour: tuple[int, int, int], size: tuple[int, int] = (320, 240)) -> bytes:
    """A JPEG of one colour (RGB), encoded by OpenCV."""
    image = np.zeros((size[1], size[0], 3), np.uint8)
    image[:] = colour[::-1]
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return encoded.tobytes()


RED, BLUE = (220, 30, 30), (30, 30, 220)


class Phone:
    """A producer on a thread: registers its stream, then sends frames of ``size`` alternating red and blue."""

    def __init__(
        self, analyst: Analyst, stream_id: str, *, fps: float = 10.0, size: tuple[int, int] = (320, 240)
    ) -> None:
        self.stream_id = stream_id
        self.frames_sent = 0
        self._frames = [colour_frame(RED, size), colour_frame(BLUE, size)]
        self._interval = 1 / fps
        self._stop = threading.Event()
        self._ws = websocket.create_connection(
            analyst.server.base.replace("http", "ws") + "/api/streams/ws",
            header=[f"Authorization: Bearer {analyst.token}"],
            timeout=GUARD,
        )
        expect(self._ws, "auth-ok")
        self._ws.send(json.dumps({"type": "register", "streamId": stream_id}))
        expect(self._ws, "registered")
        self._thread: threading.Thread | None = None

    def stream(self) -> Phone:
        """Start sending frames (the stream goes ``streaming``)."""
        self._thread = threading.Thread(target=self._send_frames, daemon=True)
        self._thread.start()
        return self

    def _send_frames(self) -> None:
        while not self._stop.is_set():
            frame = self._frames[(self.frames_sent // 3) % 2]  # change colour every third frame
            self._ws.send_binary(encode_binary_frame(self.stream_id, frame, timestamp=now_ms()))
            self.frames_sent += 1
            self._stop.wait(self._interval)

    def close(self) -> None:
        """Stop and disconnect (the stream goes ``offline``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(GUARD)
        self._ws.close()


def expect(ws: websocket.WebSocket, message_type: str) -> dict[str, Any]:
    """Skip messages until one of ``message_type`` arrives."""
    deadline = time.monotonic() + GUARD
    while time.monotonic() < deadline:
        raw = ws.recv()
        if isinstance(raw, str):
            message: dict[str, Any] = json.loads(raw)
            if message.get("type") == message_type:
                return message
            assert message.get("type") != "error", message
    raise TimeoutError(f"no {message_type} within {GUARD} s")


def send_alert(analyst: Analyst, stream_id: str, **alert: Any) -> str:
    """An ML client's alert for ``stream_id``; returns the id the relay stored it under."""
    ws = websocket.create_connection(
        analyst.server.base.replace("http", "ws") + "/api/streams/ws",
        header=[f"Authorization: Bearer {analyst.token}"],
        timeout=GUARD,
    )
    try:
        expect(ws, "auth-ok")
        subscribe = {"type": "subscribe", "streamId": stream_id, "clientType": "ml-service", "produces": ["alert"]}
        ws.send(json.dumps({**subscribe, "consumes": []}))
        expect(ws, "subscribed")
        ws.send(json.dumps({"type": "alert", "streamId": stream_id, "ref": uuid.uuid4().hex, **alert}))
        stored: str = expect(ws, "alert-stored")["id"]
        return stored
    finally:
        ws.close()


@contextmanager
def running_workbench(folder: Path) -> Iterator[WorkbenchServer]:
    server = WorkbenchServer(folder).start()
    try:
        yield server
    finally:
        server.stop()


def seed_alerts(server: WorkbenchServer, alerts: list[dict[str, Any]]) -> list[str]:
    """Store alerts as if they had arrived at their ``created_at`` (history to filter); returns their ids.

    Each dict has ``stream_id``, ``severity``, ``message``, ``created_at`` and optionally ``metadata``.
    """

    async def store() -> list[str]:
        owner = await Store.open(server.database_url)
        try:
            ids = []
            for alert in alerts:
                created: datetime = alert["created_at"]
                alert_in = AlertIn(
                    alert["stream_id"],
                    alert["severity"],
                    alert["message"],
                    alert.get("metadata", {}),
                    int(created.timestamp() * 1000),
                )
                ids.append((await owner.alerts.add(alert_in, created_at=created)).alert.id)
            return ids
        finally:
            await owner.close()

    return run_async(store)


def wait_for_alert_feed(page: Page, stream_id: str) -> None:
    """Wait until the page's alert feed receives the live alerts of ``stream_id`` (earlier ones make no toast)."""
    page.locator(f".alert-feed[data-subscribed~='{stream_id}']").wait_for(state="attached")
