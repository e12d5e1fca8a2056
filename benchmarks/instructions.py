"""``python -m benchmarks.instructions``: what one paced frame costs the relay, in instructions.

The fan-out benchmarks time the relay's CPU, which moves with whatever else
the machine runs.  This counts what does not: the user-space instructions the
relay process executes per frame, under ``valgrind --tool=callgrind``, for a
paced workload's shape (1 producer × N consumers, binary frames), with each
frame alone in its loop turn: the producer sends a frame, every consumer
receives it, then the next one goes.  The system calls per frame are counted
too (``strace -c``, in a separate run, since tracing slows the relay) because
the kernel's share of the CPU is not in the instruction count.

It starts its own ``relay serve`` (a temporary SQLite database and user, no frame
rate limit; no heartbeat and no token watch, whose periodic work would count
more per frame the slower the machine is) under the tool, waits for it (Python under valgrind starts in
about a minute), connects the clients, warms up, zeroes the counters, sends
``--frames`` frames, and reads the counts.  ``--top`` lists the C functions
that took the most instructions (Python code shows as the interpreter's own
functions: use ``py-spy`` for which Python function a sample is in).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from websockets.asyncio.client import ClientConnection

from benchmarks import api
from benchmarks.frames import FrameMaker, read_frame
from benchmarks.loadgen import open_client
from benchmarks.relays import bench_user, free_port

STARTUP_TIMEOUT = 600.0
"""Seconds ``relay serve`` may take to answer under valgrind on a busy machine."""

RECEIVE_TIMEOUT = 60.0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.instructions", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tool", choices=("callgrind", "strace", "py-spy", "none"), default="callgrind")
    parser.add_argument("--frame-kb", type=float, default=2, help="image size (default 2: paced-2k)")
    parser.add_argument("--consumers", type=int, default=10, help="consumers of the stream (default 10)")
    parser.add_argument("--frames", type=int, default=500, help="frames measured (default 500)")
    parser.add_argument("--warmup", type=int, default=100, help="frames sent before measuring (default 100)")
    parser.add_argument("--top", type=int, default=25, help="C functions to list by instructions (callgrind)")
    parser.add_argument("--keep", type=Path, help="keep the callgrind output file here")
    return parser.parse_args(argv)


@contextlib.asynccontextmanager
async def relay_under(tool: str, folder: Path) -> AsyncIterator[tuple[str, str, int, Path]]:
    """``relay serve`` under ``tool``: its base URL, a token, its PID and the tool's output file."""
    database_url = f"sqlite+aiosqlite:///{folder}/relay.db"
    token = await bench_user(database_url)
    port = free_port()
    serve = [sys.executable, "-m", "relay", "serve", "--host", "127.0.0.1", "--port", str(port)]
    serve += ["--database-url", database_url, "--max-fps", "0", "--max-alerts-per-second", "0"]
    serve += ["--log-level", "WARNING", "--ping-interval", "0"]
    output = folder / f"{tool}.out"
    if tool == "callgrind":
        command = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={output}", *serve]
    else:
        command = serve
    log = (folder / "relay.log").open("wb")
    quiet = dict(os.environ, RELAY_TOKEN_CHECK_INTERVAL="3600")  # no periodic database work in the count
    process = await asyncio.create_subprocess_exec(
        *command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=quiet
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not await api.healthy(url):
            if process.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"relay did not start: {(folder / 'relay.log').read_text()[-1500:]}")
            await asyncio.sleep(0.5)
        yield url, token, process.pid, output
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 60)
        except TimeoutError:
            process.kill()
            await process.wait()
        log.close()


class Lockstep:
    """One producer and its consumers; :meth:`send` returns once every consumer has the frame."""

    def __init__(self, producer: ClientConnection, consumers: list[ClientConnection], maker: FrameMaker) -> None:
        self._producer = producer
        self._consumers = consumers
        self._maker = maker
        self._sequence = 0

    async def send(self, count: int) -> None:
        for _ in range(count):
            sequence = self._sequence
            self._sequence += 1
            await self._producer.send(self._maker.build(sequence, time.time() * 1000))
            await asyncio.gather(*(self._receive(consumer, sequence) for consumer in self._consumers))

    @staticmethod
    async def _receive(consumer: ClientConnection, sequence: int) -> None:
        while True:
            message = await asyncio.wait_for(consumer.recv(decode=False), RECEIVE_TIMEOUT)
            frame = read_frame(message)
            if frame is not None and frame.sequence == sequence:
                return


async def clients(url: str, token: str, args: argparse.Namespace) -> tuple[Lockstep, list[ClientConnection]]:
    stream_id = await api.register_stream(url, token, "instructions")
    ws_url = "ws" + url.removeprefix("http") + "/api/streams/ws"
    subscribe = {"type": "subscribe", "streamId": stream_id, "consumes": ["video-frame"], "frameFormat": "binary"}
    consumers = [await open_client(ws_url, token, subscribe, "subscribed") for _ in range(args.consumers)]
    register = {"type": "register", "streamId": stream_id, "produces": ["video-frame"], "consumes": []}
    producer = await open_client(ws_url, token, register, "registered")
    maker = FrameMaker(0, stream_id, round(args.frame_kb * 1024), "binary")
    return Lockstep(producer, consumers, maker), [producer, *consumers]


def control(*options: str) -> None:
    subprocess.run(["callgrind_control", *options], check=True, capture_output=True, timeout=120)


def callgrind_totals(output: Path) -> int:
    """The instructions (Ir) of the dump (the last ``totals:`` or ``summary:`` line of each file)."""
    total = 0
    for part in sorted(output.parent.glob(output.name + "*")):
        for line in reversed(part.read_text(errors="replace").splitlines()):
            if line.startswith(("totals:", "summary:")):
                total += int(line.split()[1])
                break
    return total


def top_functions(output: Path, count: int) -> str:
    annotated = subprocess.run(
        ["callgrind_annotate", "--threshold=99", str(output)], capture_output=True, text=True, check=True
    ).stdout
    lines = [line for line in annotated.splitlines() if re.match(r"\s*[\d,]+ \(", line)]
    return "\n".join(lines[:count])


async def measure(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-instructions-") as name:
        folder = Path(name)
        async with relay_under(args.tool, folder) as (url, token, pid, output):
            lockstep, sockets = await clients(url, token, args)
            if args.tool == "callgrind":
                control("-i", "on", str(pid))
            await lockstep.send(args.warmup)
            tracer = None
            if args.tool == "callgrind":
                control("-z", str(pid))
            elif args.tool == "strace":
                tracer = await asyncio.create_subprocess_exec(
                    "strace", "-c", "-f", "-o", str(output), "-p", str(pid), stderr=subprocess.DEVNULL
                )
                await asyncio.sleep(2)  # attached
            elif args.tool == "py-spy":
                spy = str(Path(sys.executable).with_name("py-spy"))
                tracer = await asyncio.create_subprocess_exec(
                    *(spy, "record", "--gil", "-r", "997", "-f", "raw", "-o", str(output), "-p", str(pid)),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                await asyncio.sleep(2)  # attached
            cpu_before = _cpu(pid)
            started = time.perf_counter()
            await lockstep.send(args.frames)
            elapsed = time.perf_counter() - started
            cpu_after = _cpu(pid)
            if args.tool == "callgrind":
                control("-d", str(pid))
                control("-i", "off", str(pid))
            elif tracer is not None:
                tracer.send_signal(signal.SIGINT)
                await asyncio.wait_for(tracer.wait(), 60)
            for ws in sockets:
                await ws.close()
            frames, delivered = args.frames, args.frames * args.consumers
            print(
                f"{frames} frames of {args.frame_kb:g} KB to {args.consumers} consumers in {elapsed:.1f} s "
                f"under {args.tool}, load average {os.getloadavg()[0]:.2f}"
            )
            if args.tool == "callgrind":
                dumps = sorted(output.parent.glob(output.name + ".*"))
                total = callgrind_totals(dumps[-1])
                print(f"instructions: {total / frames:,.0f} per frame in, {total / delivered:,.0f} per frame out")
                print(top_functions(dumps[-1], args.top))
                if args.keep is not None:
                    shutil.copy(dumps[-1], args.keep)
            elif args.tool == "strace":
                print(_syscalls_per_frame(output.read_text(), frames))
            elif args.tool == "py-spy":
                print(_profile_summary(output.read_text(), args.top))
            else:
                user, system = (
                    1e6 * (after - before) / frames for before, after in zip(cpu_before, cpu_after, strict=True)
                )
                print(f"relay CPU per frame in: {user:.1f} µs user + {system:.1f} µs system (10 ms ticks: noisy)")


def _cpu(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of a process so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / ticks, int(fields[12]) / ticks


def _profile_summary(collapsed: str, count: int) -> str:
    """Samples per Python function, inclusive (on the stack) and self (innermost), from py-spy's raw output."""
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in collapsed.splitlines():
        stack, _, samples = line.rpartition(" ")
        if not stack or not samples.isdigit():
            continue
        hits = int(samples)
        total += hits
        names = [re.sub(r" \(.*?/(relay|websockets|tornado|asyncio)/", r" (\1/", part) for part in stack.split(";")]
        for name in set(names):
            inclusive[name] = inclusive.get(name, 0) + hits
        own[names[-1]] = own.get(names[-1], 0) + hits
    lines = [f"{total} samples"]
    for title, table in (("inclusive", inclusive), ("self", own)):
        lines.append(f"-- {title}")
        for name, hits in sorted(table.items(), key=lambda item: -item[1])[:count]:
            lines.append(f"{100 * hits / total:5.1f}%  {name}")
    return "\n".join(lines)


def _syscalls_per_frame(summary: str, frames: int) -> str:
    rows = []
    for line in summary.splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[0][0].isdigit() and fields[-1].isidentifier() and fields[-1] != "total":
            calls = int(fields[3])
            rows.append((calls, fields[-1]))
    rows.sort(reverse=True)
    total = sum(calls for calls, _ in rows)
    listed = ", ".join(f"{name} {calls / frames:.2f}" for calls, name in rows if calls / frames >= 0.05)
    return f"system calls: {total / frames:.2f} per frame in ({listed})"


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    asyncio.run(measure(args))


if __name__ == "__main__":
    main()
