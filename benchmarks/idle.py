"""Idle sessions: what an authenticated, silent WebSocket session costs a relay.

A relay's fixed cost per connection decides how many phones and dashboards one
node can hold.  Worker processes (``python -m benchmarks.idle``) open N sessions,
each authenticated by a first ``auth`` message and confirmed by ``auth-ok`` (as
``shared/bench/idle-conns.js`` does by default), and hold them open.  The parent
reads the relay's CPU time over the connect phase and its RSS before and after
a hold, so:

* **KB per session** = (RSS after the hold − RSS before) / sessions opened;
* **CPU per connect** = relay CPU from the first connect to the last ``auth-ok``
  / sessions opened (handshake, authentication, bookkeeping).

RSS per session is only honest on a relay process that has not served big
frames before (freed memory would be reused), which is why the suite starts a
fresh relay for every idle run.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException
from websockets.protocol import State

from benchmarks.procstat import cpu_seconds, memory
from benchmarks.relays import Target
from benchmarks.workers import Commands, Message, Worker, WorkerError, emit, run_worker, stop_all

SESSION_TIMEOUT = 15.0
CONCURRENCY = 200
"""Sessions being opened at once, over all workers (as ``idle-conns.js``)."""


@dataclass
class IdleRun:
    """The figures of one idle-sessions run; None where a figure could not be measured."""

    relay: str
    round: int
    sessions: int
    opened: int | None = None
    failed: int | None = None
    closed_while_idle: int | None = None
    connect_s: float | None = None
    rss_before_mb: float | None = None
    rss_after_mb: float | None = None
    kb_per_session: float | None = None
    cpu_connect_s: float | None = None
    cpu_ms_per_connect: float | None = None
    cpu_idle_s: float | None = None
    errors: list[str] = field(default_factory=list)


async def run_idle(target: Target, sessions: int, round_number: int, processes: int, hold: float) -> IdleRun:
    """Open ``sessions`` idle sessions to ``target`` and measure; failures land in ``errors``."""
    run = IdleRun(target.name, round_number, sessions)
    try:
        await _measure(run, target, sessions, processes, hold)
    except (WorkerError, OSError) as error:
        run.errors.append(str(error))
    return run


async def _measure(run: IdleRun, target: Target, sessions: int, processes: int, hold: float) -> None:
    processes = max(1, min(processes, sessions))
    counts = [sessions // processes + (index < sessions % processes) for index in range(processes)]
    connect_timeout = 60 + sessions / 50
    workers: list[Worker] = []
    try:
        for index, count in enumerate(counts):
            config = {
                "url": target.ws_url,
                "token": target.token,
                "count": count,
                "first": sum(counts[:index]),
                "concurrency": max(1, CONCURRENCY // processes),
                "deadline": connect_timeout + hold + 60,
            }
            workers.append(await Worker.start("benchmarks.idle", f"idle-{index}", config))
        await asyncio.gather(*(worker.expect("ready", SESSION_TIMEOUT) for worker in workers))
        before = memory(target.pid)
        cpu_start = cpu_seconds(target.pid)
        started = time.monotonic()
        for worker in workers:
            await worker.send({"command": "go"})
        connected = await asyncio.gather(*(worker.expect("connected", connect_timeout) for worker in workers))
        cpu_connected = cpu_seconds(target.pid)
        run.connect_s = round(time.monotonic() - started, 2)
        await asyncio.sleep(hold)
        after = memory(target.pid)
        run.cpu_idle_s = round(cpu_seconds(target.pid) - cpu_connected, 3)
        for worker in workers:
            await worker.send({"command": "release"})
        released = await asyncio.gather(*(worker.expect("result", SESSION_TIMEOUT) for worker in workers))
    finally:
        await stop_all(workers)
    run.opened = sum(report["ok"] for report in connected)
    run.failed = sum(report["failed"] for report in connected)
    errors: Counter[str] = Counter()
    for report in connected:
        errors.update(report["errors"])
    run.errors.extend(f"{count} × {error}" for error, count in errors.items())
    run.closed_while_idle = sum(report["closedWhileIdle"] for report in released)
    run.rss_before_mb = round(before.rss_mb, 1)
    run.rss_after_mb = round(after.rss_mb, 1)
    run.cpu_connect_s = round(cpu_connected - cpu_start, 3)
    if run.opened:
        run.kb_per_session = round((after.rss_mb - before.rss_mb) * 1024 / run.opened, 2)
        run.cpu_ms_per_connect = round(run.cpu_connect_s * 1000 / run.opened, 3)


# --------------------------------------------------------------------------- the worker


SOURCE_ADDRESSES = [f"127.0.0.{host}" for host in range(2, 255)]
"""Where the sessions come from, as phones come from many addresses.  Every 127/8 address is the
loopback here; from one address the relay would refuse (429) all but
``RELAY_MAX_UNAUTHENTICATED_PER_ADDRESS`` (50) sessions that are still authenticating."""


async def open_session(url: str, token: str, number: int) -> ClientConnection:
    """Session ``number``, authenticated by a first ``auth`` message; returns once ``auth-ok`` came."""
    source = None
    if urlsplit(url).hostname == "127.0.0.1":
        source = (SOURCE_ADDRESSES[number % len(SOURCE_ADDRESSES)], 0)
    async with asyncio.timeout(SESSION_TIMEOUT):
        ws = await connect(url, compression=None, ping_interval=None, close_timeout=1, local_addr=source)
        await ws.send(orjson.dumps({"type": "auth", "token": token}).decode())
        while True:
            message = orjson.loads(await ws.recv(decode=False))
            if message.get("type") == "auth-ok":
                return ws
            if message.get("type") == "error":
                raise WorkerError(f"auth answered {message}")


async def hold_sessions(config: Message) -> None:
    commands = await Commands.open()
    emit("ready")
    await commands.next("go")
    url, token, count = config["url"], config["token"], config["count"]
    sessions: list[ClientConnection] = []
    errors: Counter[str] = Counter()
    remaining = iter(range(count))

    async def opener() -> None:
        for number in remaining:
            try:
                sessions.append(await open_session(url, token, config["first"] + number))
            except (OSError, TimeoutError, WorkerError, WebSocketException) as error:
                errors[f"{type(error).__name__}: {error}"[:120]] += 1

    await asyncio.gather(*(opener() for _ in range(config["concurrency"])))
    emit("connected", ok=len(sessions), failed=sum(errors.values()), errors=dict(errors))
    await commands.next("release")
    emit("result", closedWhileIdle=sum(1 for ws in sessions if ws.state is not State.OPEN))
    for ws in sessions:
        ws.transport.abort()


if __name__ == "__main__":
    run_worker(hold_sessions)
