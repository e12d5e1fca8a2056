"""Services of a test's own: a ``redis-server`` it may stop and restart, never the shared one.

Tests that take a service down must not take it down for every other test (or
another developer) on the machine: this starts a private ``redis-server`` on a
free port, without persistence, and knows how to stop and start it again on
the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from tests.support import GUARD, REQUIRE_SERVICES


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivateRedis:
    def __init__(self, executable: str) -> None:
        self.executable = executable
        self.port = free_port()
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            self.executable,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        client = redis.from_url(self.url)
        try:
            async with asyncio.timeout(GUARD):
                while True:
                    with contextlib.suppress(redis.ConnectionError):
                        await client.ping()
                        return
                    await asyncio.sleep(0.02)
        finally:
            await client.aclose()

    async def stop(self) -> None:
        """Kill it (as a crash would: nothing is kept)."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


@contextlib.asynccontextmanager
async def private_redis() -> AsyncIterator[PrivateRedis]:
    executable = shutil.which("redis-server")
    if executable is None:
        message = "redis-server is not installed: the tests that restart Redis need their own"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    server = PrivateRedis(executable)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
