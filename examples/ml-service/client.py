"""The ML service: watches the user's streams, detects people, faces and motion, sends alerts.

    python examples/ml-service/client.py --url http://127.0.0.1:8000 --token TOKEN \\
        [--stream ID] [--detectors person,face,motion] [--cooldown 5]

Subscribes to one stream (``--stream``) or to all of the user's streams,
listing them again every few seconds to pick up streams registered later.
Frames are analysed with OpenCV's own detectors off the event loop, always the
newest frame of each stream (see ``pipeline.py``); what is found becomes alerts
by the severity and cooldown policy of ``policy.py``.  Every alert sent is
printed as one line, and a stats line (frames analysed per second, lag from
capture to analysis, stale frames skipped) every few seconds.  Exit codes: 0
on Ctrl-C or after ``--seconds``, 1 when the relay refuses, 2 for bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import cv2
from detectors import KINDS
from pipeline import Pipeline
from policy import AlertPolicy

from relay.client import AuthenticationError, ErrorReport, Frame, RelayClient, RelayError, RelayUnavailable


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("RELAY_URL", "http://127.0.0.1:8000"), help="relay address")
    parser.add_argument("--token", default=os.environ.get("RELAY_TOKEN"), help="bearer token (or RELAY_TOKEN)")
    parser.add_argument("--stream", help="watch only this stream (default: all of the user's streams)")
    parser.add_argument("--detectors", default=",".join(KINDS), help=f"comma-separated, of {','.join(KINDS)}")
    parser.add_argument(
        "--cooldown", type=float, default=5.0, help="seconds without a detection before a kind alerts again"
    )
    parser.add_argument("--rescan", type=float, default=5.0, help="seconds between looking for new streams (default 5)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="analysis threads (default: cores)")
    parser.add_argument("--stats-every", type=float, default=5.0, help="seconds between stats lines (default 5)")
    parser.add_argument("--seconds", type=float, default=0.0, help="stop after this long (default 0: until Ctrl-C)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log connections and reconnects")
    args = parser.parse_args(argv)
    args.kinds = tuple(kind.strip() for kind in args.detectors.split(",") if kind.strip())
    unknown = set(args.kinds) - set(KINDS)
    problems = [
        "--token is required (or set RELAY_TOKEN)" if not args.token else "",
        f"unknown detectors: {', '.join(sorted(unknown))} (choose from {', '.join(KINDS)})" if unknown else "",
        "--detectors needs at least one detector" if not args.kinds else "",
        "--cooldown must not be negative" if args.cooldown < 0 else "",
        "--rescan must be positive" if args.rescan <= 0 else "",
        "--workers must be at least 1" if args.workers < 1 else "",
        "--stats-every must be positive" if args.stats_every <= 0 else "",
        "--seconds must not be negative" if args.seconds < 0 else "",
    ]
    for problem in problems:
        if problem:
            parser.error(problem)
    return args


class Watcher:
    """Keeps the service subscribed to its streams: one, or every stream of the user as they appear."""

    def __init__(self, client: RelayClient, only: str | None) -> None:
        self.client = client
        self.only = only
        self.names: dict[str, str] = {}

    def name(self, stream_id: str) -> str:
        return self.names.get(stream_id, stream_id)

    async def refresh(self) -> None:
        """Subscribe to the streams not yet watched."""
        streams = await self.client.list_streams()
        self.names.update({s.id: s.device_name for s in streams})
        wanted = [self.only] if self.only else [s.id for s in streams]
        for stream_id in wanted:
            if stream_id not in self.client.streams:
                await self.client.subscribe(
                    stream_id, consumes=["video-frame"], produces=["alert"], client_type="ml-service"
                )
                print(f"ml: watching {self.name(stream_id)} ({stream_id})", flush=True)

    async def keep_refreshing(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await self.refresh()
            except RelayUnavailable as error:  # the relay is restarting: the client reconnects by itself
                print(f"ml: cannot list streams now: {error}", file=sys.stderr, flush=True)


async def consume(client: RelayClient, pipeline: Pipeline) -> None:
    async for message in client:
        if isinstance(message, Frame):
            pipeline.offer(message)
        elif isinstance(message, ErrorReport):
            print(f"ml: relay error {message.code}: {message.message}", file=sys.stderr, flush=True)


async def report(pipeline: Pipeline, watcher: Watcher, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        print(pipeline.stats.line(len(watcher.client.streams)), flush=True)


async def run(args: argparse.Namespace) -> int:
    # `kill` (SIGTERM) stops it as cleanly as Ctrl-C does: by cancelling this task, so
    # every `finally` below runs on the loop instead of a KeyboardInterrupt landing anywhere.
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    cv2.setNumThreads(1)  # parallelism comes from analysing streams side by side, one thread each
    client = RelayClient(args.url, args.token, frame_format="binary")
    watcher = Watcher(client, args.stream)
    with ThreadPoolExecutor(max_workers=args.workers, thread_name_prefix="detector") as executor:
        pipeline = Pipeline(client, executor, args.kinds, AlertPolicy(args.cooldown), watcher.name)
        tasks: list[asyncio.Task[None]] = []
        try:
            await client.connect()
            await watcher.refresh()
            print(f"ml: detecting {', '.join(args.kinds)} with {args.workers} threads", flush=True)
            tasks = [
                asyncio.create_task(consume(client, pipeline)),
                asyncio.create_task(report(pipeline, watcher, args.stats_every)),
            ]
            if not args.stream:
                tasks.append(asyncio.create_task(watcher.keep_refreshing(args.rescan)))
            done, _ = await asyncio.wait(tasks, timeout=args.seconds or None, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
            return 0
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await pipeline.close()
            await client.close(flush_timeout=5)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="ml: %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
            return asyncio.run(run(args))
        return 0
    except AuthenticationError as error:
        print(f"ml: the relay refused the token: {error}", file=sys.stderr)
    except RelayError as error:
        print(f"ml: {error}", file=sys.stderr)
    return 1


def exit_now(code: int) -> None:
    """Leave without running OpenCV's C++ destructors.

    Everything is closed and flushed by then; but OpenCV's worker threads can
    still be alive when the interpreter finalises, and tearing them down there
    now and then ends the process with "terminate called without an active
    exception" (SIGABRT) instead of its exit code.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
