"""Load-generator processes: starting them, talking to them, and their side of the talk.

The load generator runs in processes of its own (``python -m benchmarks.loadgen``,
``python -m benchmarks.idle``), apart from the process that measures, so that
producers, consumers and the relay each get a core's worth of scheduling and the
generator is not what limits a run.  A worker gets its configuration as one
JSON argument and then speaks JSON lines: it prints events on stdout
(``ready``, ``result``, ``error``, ...) and reads commands on stdin (``go`` with
the wall-clock start time that every worker shares, ...).

Every worker has a deadline of its own and exits by itself when it passes, so a
stuck relay never hangs a benchmark; the parent kills what is left anyway.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

Message = dict[str, Any]

_REPO = Path(__file__).resolve().parent.parent


class WorkerError(RuntimeError):
    """A worker failed, gave up, or said something unexpected."""


class Worker:
    """A running worker process, seen from the parent."""

    def __init__(self, name: str, process: asyncio.subprocess.Process, stderr: Path) -> None:
        self.name = name
        self._process = process
        self._stderr = stderr

    @property
    def pid(self) -> int:
        return self._process.pid

    @classmethod
    async def start(cls, module: str, name: str, config: Message) -> Worker:
        """Start ``python -m module`` with ``config``; its stderr goes to a temporary file."""
        handle, path = tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".log")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(_REPO), os.environ.get("PYTHONPATH")])))
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                module,
                json.dumps(config),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=handle,
                env=env,
                limit=64 * 1024 * 1024,
            )
        finally:
            os.close(handle)
        return cls(name, process, Path(path))

    async def expect(self, event: str, within: float) -> Message:
        """The worker's next event, which must be ``event``, within ``within`` seconds."""
        assert self._process.stdout is not None
        try:
            line = await asyncio.wait_for(self._process.stdout.readline(), within)
        except TimeoutError:
            raise WorkerError(f"{self.name}: no '{event}' within {within:g} s") from None
        if not line:
            await self._process.wait()
            raise WorkerError(f"{self.name} exited ({self._process.returncode}) before '{event}'{self._stderr_tail()}")
        message: Message = orjson.loads(line)
        if message.get("event") == "error":
            raise WorkerError(f"{self.name}: {message.get('error')}")
        if message.get("event") != event:
            raise WorkerError(f"{self.name}: expected '{event}', got {message}")
        return message

    async def send(self, command: Message) -> None:
        assert self._process.stdin is not None
        self._process.stdin.write(orjson.dumps(command) + b"\n")
        await self._process.stdin.drain()

    async def stop(self) -> None:
        """Wait briefly for the worker to exit by itself, then kill it; remove its log."""
        try:
            await asyncio.wait_for(self._process.wait(), 5)
        except TimeoutError:
            self._process.kill()
            await self._process.wait()
        self._stderr.unlink(missing_ok=True)

    def _stderr_tail(self) -> str:
        text = self._stderr.read_text(errors="replace").strip()
        return f": {text[-1500:]}" if text else ""


async def stop_all(workers: list[Worker]) -> None:
    await asyncio.gather(*(worker.stop() for worker in workers))


# --------------------------------------------------------------------------- the worker's side


def emit(event: str, **fields: Any) -> None:
    """Tell the parent something: one JSON line on stdout."""
    sys.stdout.buffer.write(orjson.dumps({"event": event, **fields}) + b"\n")
    sys.stdout.buffer.flush()


class Commands:
    """The parent's commands, read from stdin without blocking the worker's loop."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    @classmethod
    async def open(cls) -> Commands:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        return cls(reader)

    async def next(self, expected: str) -> Message:
        """The next command, which must be ``expected``."""
        line = await self._reader.readline()
        if not line:
            raise WorkerError("the parent went away")
        command: Message = orjson.loads(line)
        if command.get("command") != expected:
            raise WorkerError(f"expected command '{expected}', got {command}")
        return command


async def sleep_until(wall_time: float) -> None:
    """Sleep until a wall-clock time (``time.time()``), the clock all workers share."""
    delay = wall_time - time.time()
    if delay > 0:
        await asyncio.sleep(delay)


def run_worker(main: Callable[[Message], Awaitable[None]]) -> None:
    """Run a worker's ``main(config)`` on uvloop (where installed) within its deadline.

    ``config["deadline"]`` is the most seconds the worker may live; past it, or on
    any exception, the worker reports an ``error`` event and exits with status 1.
    """
    try:
        config: Message = json.loads(sys.argv[1])
    except (IndexError, ValueError):
        sys.exit(f"{sys.argv[0]} is a worker that `python -m benchmarks` starts with its configuration; run that")

    async def guarded() -> None:
        try:
            async with asyncio.timeout(config["deadline"]) as scope:
                await main(config)
        except TimeoutError:
            if scope.expired():
                raise WorkerError(f"gave up after its deadline of {config['deadline']:g} s") from None
            raise

    try:
        import uvloop
    except ImportError:
        runner: Callable[[Any], None] = asyncio.run
    else:
        runner = uvloop.run
    try:
        runner(guarded())
    except Exception as error:
        emit("error", error=f"{type(error).__name__}: {error}")
        sys.exit(1)
