"""The relays under test: ours (``relay serve``) and the reference Node peer.

By default the suite starts each relay itself, fresh, on a free port of
127.0.0.1: ``relay serve`` on a temporary SQLite database with one user made by
``relay users add`` and no frame or alert rate limit; the peer is
``peer/ws-relay.js`` of ``shared/bench`` (Node + ``ws``, the seed's design), copied
to a cache folder and ``npm install``-ed there once, as its README asks (the
shared folder itself is read-only).  A relay that already runs is measured
through its URL, token and PID instead (:func:`external`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from benchmarks import api
from benchmarks.procstat import pid_listening_on

STARTUP_TIMEOUT = 30.0
PEER_FILES = ("ws-relay.js", "package.json", "package-lock.json")


@dataclass(frozen=True, slots=True)
class Target:
    """A relay to measure: where it listens, a token it accepts, and its process."""

    name: str
    url: str
    token: str
    pid: int

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http") + "/api/streams/ws"


class RelayError(RuntimeError):
    """A relay could not be started or found."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def external(name: str, url: str, token: str, pid: int | None) -> Target:
    """A relay someone else started; its PID is found from its port unless given."""
    url = url.rstrip("/")
    if pid is None:
        port = urlsplit(url).port or 80
        pid = pid_listening_on(port)
        if pid is None:
            raise RelayError(f"no process of this user listens on port {port}: pass --relay-pid")
    return Target(name, url, token, pid)


async def bench_user(database_url: str) -> str:
    """``relay users add bench`` on ``database_url`` (made if need be); the token it prints."""
    added = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "relay", "users", "add", "bench", "--database-url", database_url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if added.returncode != 0:
        raise RelayError(f"relay users add failed: {added.stderr.strip()[-1500:]}")
    return added.stdout.strip().splitlines()[-1]


@contextlib.asynccontextmanager
async def ours() -> AsyncIterator[Target]:
    """A fresh ``relay serve`` with a temporary database and user, stopped on exit."""
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as folder:
        database_url = f"sqlite+aiosqlite:///{folder}/relay.db"
        token = await bench_user(database_url)
        port = free_port()
        command = [
            sys.executable,
            "-m",
            "relay",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--database-url",
            database_url,
            "--max-fps",
            "0",
            "--max-alerts-per-second",
            "0",
            "--log-level",
            "WARNING",
        ]
        async with _process("ours", command, Path(folder) / "relay.log", port, token) as target:
            yield target


@contextlib.asynccontextmanager
async def peer(script: Path) -> AsyncIterator[Target]:
    """A fresh reference peer (any token is accepted), stopped on exit."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-peer-") as folder:
        command = ["node", str(script), str(port), "--host", "127.0.0.1"]
        async with _process("peer", command, Path(folder) / "peer.log", port, "bench-token") as target:
            yield target


@contextlib.asynccontextmanager
async def _process(name: str, command: list[str], log: Path, port: int, token: str) -> AsyncIterator[Target]:
    with log.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STARTUP_TIMEOUT
        while not await api.healthy(url):
            if process.returncode is not None or loop.time() > deadline:
                raise RelayError(f"{name} relay did not start ({' '.join(command)}): {_tail(log)}")
            await asyncio.sleep(0.1)
        yield Target(name, url, token, process.pid)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-1500:]


def find_peer_source(repo: Path, peer_dir: Path | None) -> Path | None:
    """The shared bench folder: ``--peer-dir``, else ``../shared/bench`` beside the repository."""
    candidate = peer_dir if peer_dir is not None else repo.parent / "shared" / "bench"
    return candidate if (candidate / "peer" / "ws-relay.js").is_file() else None


def prepare_peer(source: Path) -> Path:
    """``ws-relay.js`` in a cached copy of ``source/peer`` with its packages installed.

    The copy is keyed by a hash of the peer's files, so a changed peer is
    installed anew; ``npm install`` runs only when the copy is new.
    """
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise RelayError("node and npm are needed to run the reference peer")
    digest = hashlib.sha256()
    for file in PEER_FILES:
        path = source / "peer" / file
        digest.update(path.read_bytes() if path.exists() else b"")
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vigil-relay-bench"
    target = cache / f"peer-{digest.hexdigest()[:16]}"
    if not (target / "node_modules" / "ws").is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="peer-", dir=cache))
        for file in PEER_FILES:
            if (source / "peer" / file).exists():
                shutil.copy(source / "peer" / file, staging / file)
        installed = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--silent"],
            cwd=staging,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if installed.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise RelayError(f"npm install of the peer failed: {installed.stderr.strip()[-1500:]}")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    return target / "ws-relay.js"
