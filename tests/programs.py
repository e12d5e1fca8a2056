"""Example programs run as their own processes, their output read line by line.

A test starts a program, waits for lines it prints (a regular expression,
under a guard timeout), and stops it as a user would, with Ctrl-C (SIGINT).
If the program ends before printing what the test waits for, the test fails
at once with the program's stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from tests.support import GUARD

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


class Program:
    """One running program; see the module docstring."""

    def __init__(self, name: str, process: asyncio.subprocess.Process) -> None:
        self.name = name
        self.process = process
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._changed = asyncio.Event()
        assert process.stdout is not None
        assert process.stderr is not None
        self._readers = [
            asyncio.create_task(self._collect(process.stdout, self.stdout)),
            asyncio.create_task(self._collect(process.stderr, self.stderr)),
        ]

    @classmethod
    async def start(cls, *command: str | Path, cwd: Path | None = None) -> Program:
        """Start ``command``; a ``.py`` first item runs with this Python."""
        first = Path(command[0])
        argv = [sys.executable, str(first)] if first.suffix == ".py" else [str(first)]
        argv += [str(part) for part in command[1:]]
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        return cls(first.name, process)

    async def _collect(self, stream: asyncio.StreamReader, lines: list[str]) -> None:
        while raw := await stream.readline():
            lines.append(raw.decode(errors="replace").rstrip("\n"))
            self._changed.set()
        self._changed.set()

    async def line(self, pattern: str, *, within: float = GUARD) -> re.Match[str]:
        """The first line of stdout matching ``pattern`` (waiting for it if need be)."""
        compiled = re.compile(pattern)
        seen = 0
        async with asyncio.timeout(within):
            while True:
                for text in self.stdout[seen:]:
                    if match := compiled.search(text):
                        return match
                seen = len(self.stdout)
                if all(reader.done() for reader in self._readers):
                    raise AssertionError(f"{self.name} ended ({self.process.returncode}) without {pattern!r}: {self}")
                self._changed.clear()
                await self._changed.wait()

    async def wait(self, within: float = GUARD) -> int:
        """Its exit code, once it ends by itself (within ``within`` seconds)."""
        async with asyncio.timeout(within):
            code = await self.process.wait()
            await asyncio.gather(*self._readers)
        return code

    async def stop(self) -> int:
        """Ctrl-C, and its exit code; killed if it does not stop within the guard."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return await self.wait()
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            raise

    async def kill(self) -> None:
        """For cleanup after a failure: end it now."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()
        for reader in self._readers:
            reader.cancel()

    def __str__(self) -> str:
        tail = "\n".join(self.stderr[-15:])
        return f"\n--- stdout of {self.name}:\n" + "\n".join(self.stdout[-15:]) + f"\n--- stderr:\n{tail}"


@contextlib.asynccontextmanager
async def relay_serve(
    database_url: str, *flags: str, environment: dict[str, str] | None = None
) -> AsyncIterator[tuple[asyncio.subprocess.Process, int]]:
    """``relay serve`` on a free port in a process of its own (uvloop, as in production).

    Yields the process and its port once it listens; its log is read (and
    dropped) meanwhile, and it is terminated at the end unless it ended already.
    """
    analytics = tempfile.TemporaryDirectory(prefix="relay-analytics-")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relay",
        "serve",
        "--port",
        "0",
        "--database-url",
        database_url,
        *flags,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "RELAY_ANALYTICS_DIR": analytics.name, **(environment or {})},
    )
    assert process.stderr is not None
    stderr = process.stderr
    try:
        async with asyncio.timeout(GUARD):
            while not (match := re.search(rb"listening on http://127.0.0.1:(\d+)", await stderr.readline())):
                pass

        async def drain() -> None:
            while await stderr.readline():
                pass

        draining = asyncio.create_task(drain())
        yield process, int(match.group(1))
        draining.cancel()
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()
        analytics.cleanup()
