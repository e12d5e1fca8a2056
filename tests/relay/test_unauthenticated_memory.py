"""Peers that never authenticate cannot make the relay commit memory by declaring big frames.

A frame header may declare a payload of up to the limit before authentication
(1 MiB; above it the relay closes with 1009 at once) before a byte of it
arrives.  The relay must not set memory aside for what was only declared:
measured on a real ``relay serve`` process (uvloop, as in production), with a
few hundred such peers holding their connections open.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from relay.tornado.connection import UNAUTHENTICATED_MESSAGE_BYTES
from tests.programs import relay_serve
from tests.raw_websocket import RawWebSocket, client_frame

PEERS = 200
DECLARED = UNAUTHENTICATED_MESSAGE_BYTES  # the most a peer may declare before it authenticates
SENT = 1024  # what each peer actually sends of it


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def test_declared_but_unsent_payloads_cost_no_memory(tmp_path: Path) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'relay.db'}"
    all_from_here = {"RELAY_MAX_UNAUTHENTICATED_PER_ADDRESS": str(PEERS + 2)}  # every peer is 127.0.0.1
    async with relay_serve(database_url, "--ping-interval", "0", environment=all_from_here) as (process, port):
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
