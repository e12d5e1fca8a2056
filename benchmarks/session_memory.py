"""``python -m benchmarks.session_memory``: what an idle session holds, and what a closed one leaves to the GC.

The idle workload measures RSS per session, which mixes the relay's own objects
with allocator pages.  This looks inside: a relay runs in this process (uvloop,
a temporary SQLite database), a child process opens ``--sessions`` WebSocket
sessions that authenticate by a first ``auth`` message and then stay silent, and

* ``tracemalloc`` compares the relay's Python memory before and after (each
  time after a full collection): bytes per session, and the source lines that
  allocated most of them;
* once the child closes them all and the relay has noticed, ``gc.collect()``
  (automatic collection off meanwhile) says how many objects the closed
  sessions left in reference cycles: garbage that only a full collection frees,
  which makes those collections long during connection floods (issue 9).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tempfile
import tracemalloc
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import uvloop

from relay.config import Settings
from relay.tornado.server import RelayServer

CLIENT = r"""
import asyncio, base64, os, struct, sys

def frame(payload):
    key = os.urandom(4)
    return bytes([0x81, 0x80 | len(payload)]) + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))

async def session(port, token):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET /api/streams/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    await reader.readuntil(b"\r\n\r\n")
    writer.write(frame(('{"type":"auth","token":"%s"}' % token).encode()))
    while b"auth-ok" not in await reader.read(4096):
        pass
    return writer

async def main(port, token, count):
    writers = []
    for start in range(0, count, 100):
        writers += await asyncio.gather(*(session(port, token) for _ in range(min(100, count - start))))
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    for writer in writers:
        writer.close()
    print("closed", flush=True)

asyncio.run(main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3])))
"""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.session_memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--top", type=int, default=15, help="source lines to list by bytes per session")
    return parser.parse_args(argv)


async def measure(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-sessions-") as folder:
        settings = Settings(
            database_url=f"sqlite+aiosqlite:///{Path(folder) / 'relay.db'}",
            host="127.0.0.1",
            port=0,
            analytics_refresh=0,
            analytics_dir=str(Path(folder) / "analytics"),
            max_unauthenticated=args.sessions + 10,
            max_unauthenticated_per_address=args.sessions + 10,
        )
        server = RelayServer(settings)
        await server.start()
        relay = server.relay
        try:
            issued = await relay.store.users.add_or_issue_token("bench", None)
            await open_and_close(server, issued.token, 10)  # one-off costs: imports, caches, the first pages
            gc.collect()
            tracemalloc.start(1)
            before = tracemalloc.take_snapshot()
            child = await asyncio.create_subprocess_exec(
                sys.executable,
                *("-c", CLIENT, str(server.port), issued.token, str(args.sessions)),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            assert child.stdout is not None
            assert child.stdin is not None
            assert (await child.stdout.readline()).strip() == b"ready"  # every auth-ok sent: every session is there
            gc.collect()  # what the handshakes left in cycles is not what a session holds
            after = tracemalloc.take_snapshot()
            stats = after.compare_to(before, "lineno")
            total = sum(stat.size_diff for stat in stats)
            print(f"{args.sessions} idle sessions: {total / args.sessions:,.0f} bytes of Python objects each")
            for stat in stats[: args.top]:
                frame = stat.traceback[0]
                name = frame.filename.split("site-packages/")[-1].split("/wt-perf/")[-1]
                print(f"  {stat.size_diff / args.sessions:7.0f} B  {name}:{frame.lineno}")
            tracemalloc.stop()
            gc.disable()
            child.stdin.write(b"close\n")
            await child.stdin.drain()
            await child.wait()
            await relay.connections.all_gone(60)
            for _ in range(20):  # the loop's last callbacks of the closed connections
                await asyncio.sleep(0)
            gc.set_debug(gc.DEBUG_SAVEALL)  # keep what it finds, to say what it is
            cyclic = gc.collect()
            kinds = Counter(type(found).__qualname__ for found in gc.garbage)
            gc.garbage.clear()
            gc.set_debug(0)
            print(f"closed: {cyclic / args.sessions:.1f} objects per session found only by the cycle collector")
            for kind, count in kinds.most_common(args.top):
                print(f"  {count / args.sessions:5.1f}  {kind}")
        finally:
            gc.enable()
            await server.stop()


async def open_and_close(server: RelayServer, token: str, count: int) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-c", CLIENT, str(server.port), token, str(count)),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    assert child.stdin is not None
    await child.stdout.readline()
    child.stdin.write(b"close\n")
    await child.stdin.drain()
    await child.wait()
    await server.relay.connections.all_gone(60)


def main(argv: Sequence[str] | None = None) -> None:
    uvloop.run(measure(parse_args(argv)))


if __name__ == "__main__":
    main()
