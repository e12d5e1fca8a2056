"""Peers that never authenticate cannot make the relay commit memory by declaring big frames.

A frame header may declare a payload of up to the message limit before a byte
of it arrives.  The relay must not set memory aside for what was only
declared: measured on a real ``relay serve`` process (uvloop, as in
production), with a few hundred such peers holding their connections open.
"""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

from tests.raw_websocket import RawWebSocket, client_frame
from tests.support import GUARD

PEERS = 200
DECLARED = 8 * 1024 * 1024  # the default message limit
SENT = 1024  # what each peer actually sends of it


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def test_declared_but_unsent_payloads_cost_no_memory(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relay",
        "serve",
        "--port",
        "0",
        "--ping-interval",
        "0",
        "--database-url",
        f"sqlite+aiosqlite:///{tmp_path / 'relay.db'}",
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    try:
        async with asyncio.timeout(GUARD):
            while not (match := re.search(rb"listening on http://127.0.0.1:(\d+)", await process.stderr.readline())):
                pass
        port = int(match.group(1))
        drain = asyncio.create_task(_drain(process.stderr))
        warm = await RawWebSocket.open(port)  # the first connection's one-off costs (imports, caches)
        await warm.close()
        before = resident_mb(process.pid)

        peers = [await RawWebSocket.open(port) for _ in range(PEERS)]
        for peer in peers:
            peer.send(client_frame(0x2, b"x" * SENT, length=DECLARED)[: 14 + SENT])
        for peer in peers:
            await peer.writer.drain()
        probe = await RawWebSocket.open(port)  # answered, so the relay has read everything sent before it
        probe.send(client_frame(0x1, b'{"type":"ping"}'))
        assert (await probe.read_frame()).payload == b'{"type":"pong"}'
        holding = resident_mb(process.pid)

        for peer in [*peers, probe]:
            await peer.close()
        settled = resident_mb(process.pid)
        for _ in range(100):  # the relay notices the closes over the next few turns of its loop
            await asyncio.sleep(0.05)
            settled = resident_mb(process.pid)
            if settled - before < 8:
                break

        declared_mb = PEERS * DECLARED / 2**20
        assert holding - before < 40, (
            f"{PEERS} peers declaring {declared_mb:.0f} MB grew the relay by {holding - before:.0f} MB"
        )
        assert settled - before < 8, f"the relay kept {settled - before:.0f} MB after the peers left"
        drain.cancel()
    finally:
        process.terminate()
        await process.wait()


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass
