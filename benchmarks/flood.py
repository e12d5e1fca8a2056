"""An authenticated stream's latency while thousands of sessions upgrade and never authenticate.

Issue 9's attack: 2,000 connections that complete the WebSocket handshake and
then say nothing used to raise a real stream's p99 latency from 5 ms to 350 ms.
The relay now caps sessions that have not authenticated, per address and in
all, closes them after ``RELAY_AUTH_TIMEOUT``, and reads them cheaply; this
measures what is left of the harm, on a fresh ``relay serve``:

1. **quiet**: one phone streaming 10 KB frames at 30 fps to two dashboards,
   end-to-end latency measured as every other benchmark does (``fanout``);
2. **flood**: the same, while worker processes hold ``--sessions`` silent
   sessions from 253 loopback addresses (as many phones or a botnet would
   come from many), opening a new one whenever the relay closes or refuses one,
   so the pressure stays for the whole window (a refused one after the 429's
   ``Retry-After``).

Two floods: **held**, where a refused session gives up (the relay then holds
at most its cap of silent sessions, renewed as it closes them after the auth
timeout), and **retrying**, where every refused one comes back after the 429's
``Retry-After``, a thousand handshakes a second at the default caps.  It prints
p50/p99 of each window and the ratio to quiet (target: p99 ≤ 3 × quiet), with
the sessions held and refused, measured in one run.

    .venv/bin/python -m benchmarks.flood                 # 2,000 sessions, about a minute
    .venv/bin/python -m benchmarks.flood --smoke --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus, WebSocketException

from benchmarks import relays
from benchmarks.fanout import FanoutRun, run_fanout
from benchmarks.idle import SOURCE_ADDRESSES
from benchmarks.relays import Target
from benchmarks.workers import Commands, Message, Worker, emit, run_worker, stop_all
from benchmarks.workloads import Timing, Workload

STREAM = Workload("flooded", "1 × 2, 10 KB, 30 fps, binary", 1, 2, 10, 30, "binary", "binary")
TARGET_RATIO = 3.0
FLOOD_PROCESSES = 2
SETUP_TIMEOUT = 60.0
RETRY_AFTER = 1.0
"""A refused session tries again after the ``Retry-After`` of the relay's 429.  Sessions that retry
without pause are an HTTP request flood, which no per-session cap can absorb (a rate limit in front
of the relay does: docs/DEPLOYMENT.md)."""


@dataclass
class Window:
    """One measured window of the stream: quiet, or under one kind of flood."""

    name: str
    latency_ms: dict[str, Any] = field(default_factory=dict)
    lost_pct: float | None = None
    relay_cpu_s: float | None = None
    p99_ratio: float | None = None
    """This window's p99 over the quiet window's."""
    held_at_start: int | None = None
    opened: int | None = None
    refused: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


SCENARIOS = {"held": False, "retrying": True}
"""Each flood and whether its refused sessions try again (after ``Retry-After``) or give up."""


async def measure(sessions: int, timing: Timing, *, flood_nice: int = 0) -> list[Window]:
    """Quiet, then each flood, on one fresh relay (the flood's processes at ``flood_nice``)."""
    async with relays.ours() as target:
        quiet = _window("quiet", await run_fanout(target, STREAM, timing, 1, consumer_processes=1))
        windows = [quiet]
        for name, retry in SCENARIOS.items():
            await asyncio.sleep(timing.pause)
            workers = await _start_flood(target, sessions, retry, flood_nice)
            try:
                held = await asyncio.gather(*(worker.expect("held", SETUP_TIMEOUT) for worker in workers))
                window = _window(name, await run_fanout(target, STREAM, timing, 1, consumer_processes=1))
                for worker in workers:
                    await worker.send({"command": "stop"})
                totals = await asyncio.gather(*(worker.expect("result", SETUP_TIMEOUT) for worker in workers))
            finally:
                await stop_all(workers)
            window.held_at_start = sum(message["held"] for message in held)
            window.opened = sum(message["opened"] for message in totals)
            refused: Counter[str] = Counter()
            for message in totals:
                refused.update(message["refused"])
            window.refused = dict(refused)
            quiet_p99, p99 = quiet.latency_ms.get("p99"), window.latency_ms.get("p99")
            if quiet_p99 and p99:
                window.p99_ratio = round(p99 / quiet_p99, 2)
            windows.append(window)
    return windows


def _window(name: str, run: FanoutRun) -> Window:
    return Window(name, run.latency_ms, run.lost_pct, run.relay_cpu_s, errors=run.errors)


async def _start_flood(target: Target, sessions: int, retry: bool, nice: int) -> list[Worker]:
    counts = [sessions // FLOOD_PROCESSES + (index < sessions % FLOOD_PROCESSES) for index in range(FLOOD_PROCESSES)]
    workers = []
    for index, count in enumerate(counts):
        config = {
            "url": target.ws_url,
            "count": count,
            "first": sum(counts[:index]),
            "retry": retry,
            "nice": nice,
            "deadline": 600,
        }
        workers.append(await Worker.start("benchmarks.flood", f"flood-{index}", config))
    await asyncio.gather(*(worker.expect("ready", SETUP_TIMEOUT) for worker in workers))
    for worker in workers:
        await worker.send({"command": "go"})
    return workers


# --------------------------------------------------------------------------- the worker


async def flood(config: Message) -> None:
    """Hold ``count`` silent sessions, each reopened as soon as the relay closes or refuses it."""
    os.nice(config["nice"])
    commands = await Commands.open()
    emit("ready")
    await commands.next("go")
    url, count, first, retry = config["url"], config["count"], config["first"], config["retry"]
    local = urlsplit(url).hostname == "127.0.0.1"
    held, opened, tried = 0, 0, 0
    refused: Counter[str] = Counter()
    stopping = asyncio.Event()
    started = asyncio.Event()

    def first_try_done() -> None:
        nonlocal tried
        tried += 1
        if tried == count:
            started.set()

    async def session(number: int) -> None:
        nonlocal held, opened
        source = (SOURCE_ADDRESSES[number % len(SOURCE_ADDRESSES)], 0) if local else None
        first = True
        while not stopping.is_set():
            try:
                async with connect(url, compression=None, ping_interval=None, close_timeout=1, local_addr=source) as ws:
                    opened += 1
                    held += 1
                    if first:
                        first_try_done()
                    first = False
                    try:
                        await ws.wait_closed()  # never authenticates: the relay ends it
                    finally:
                        held -= 1
                continue
            except InvalidStatus as error:
                refused[f"HTTP {error.response.status_code}"] += 1
                if not retry:
                    break
                await asyncio.sleep(RETRY_AFTER)
            except (OSError, TimeoutError, WebSocketException) as error:
                refused[type(error).__name__] += 1
                if not retry:
                    break
                await asyncio.sleep(RETRY_AFTER)
            if first:
                first_try_done()
            first = False
        if first:
            first_try_done()

    tasks = [asyncio.create_task(session(first + number)) for number in range(count)]
    await asyncio.wait_for(started.wait(), SETUP_TIMEOUT / 2)  # every session tried once: held or refused
    emit("held", held=held)
    await commands.next("stop")
    stopping.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    emit("result", opened=opened, refused=dict(refused))


# --------------------------------------------------------------------------- the command


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.flood", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=2000, help="silent sessions to hold (default 2000)")
    parser.add_argument("--seconds", type=float, default=15.0, help="each measured window (default 15)")
    parser.add_argument("--smoke", action="store_true", help="200 sessions, 2 s windows: seconds in all")
    parser.add_argument(
        "--flood-nice",
        type=int,
        default=0,
        metavar="N",
        help="run the flood's processes at this nice level (19: the attackers' CPU is not the relay's, as on "
        "a network; on this machine's 2 cores their handshakes otherwise take the CPU the stream needs)",
    )
    parser.add_argument("--json", type=Path, help="write the figures here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sessions, seconds = (200, 2.0) if args.smoke else (args.sessions, args.seconds)
    timing = Timing(warmup=1.0 if args.smoke else 3.0, seconds=seconds, drain=1.0, pause=1.0)
    windows = asyncio.run(measure(sessions, timing, flood_nice=args.flood_nice))
    niced = f", the flood's processes at nice {args.flood_nice}" if args.flood_nice else ""
    print(f"{sessions} silent sessions asked{niced}; target: p99 <= {TARGET_RATIO}x quiet")
    print(f"{'window':9} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'ratio':>6} {'lost %':>6}  held / opened / refused")
    for window in windows:
        latency = window.latency_ms
        p50, p99, most = (latency.get(key) for key in ("p50", "p99", "max"))
        flood = f"{window.held_at_start} / {window.opened} / {window.refused}" if window.name != "quiet" else ""
        ratio = f"{window.p99_ratio}x" if window.p99_ratio is not None else "-"
        print(f"{window.name:9} {p50!s:>7} {p99!s:>7} {most!s:>7} {ratio:>6} {window.lost_pct!s:>6}  {flood}")
    if args.json:
        args.json.write_text(json.dumps([asdict(window) for window in windows], indent=2) + "\n")
    errors = [error for window in windows for error in window.errors]
    if errors or any(window.latency_ms.get("p99") is None for window in windows):
        print("errors: " + "; ".join(errors), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 2 and sys.argv[1].startswith("{"):  # started by Worker.start with its config
        run_worker(flood)
    else:
        sys.exit(main())
