"""Simulated phones: stream real footage to a relay and print the alerts that come back.

    python examples/mobile/simulate.py --url http://127.0.0.1:8000 --token TOKEN \\
        [--streams 4] [--video PATH | --camera N | --sample bikes|carphone|all] \\
        [--fps 10] [--width 640] [--quality 70] [--format binary|json] \\
        [--seconds N (0 = forever)] [--name-prefix "Phone"]

Each phone is a device of its own: a stream (``Phone 1``, ``Phone 2``, …,
reused if the user already has one of that name), a WebSocket connection that
reconnects by itself, and a camera.  With ``--sample all`` (the default) the
phones take turns between the sample videos, so different phones show different
scenes.  Prints a line per stream when it starts, one per alert received, and a
stats line every few seconds.  Exit codes: 0 done, 1 the relay refused or
failed, 2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from footage import SAMPLES, Footage, sample_path
from phone import Camera, Phone

from relay.client import AuthenticationError, RelayClient, RelayError

STATS_EVERY = 5.0
"""Seconds between stats lines."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--url", default=os.environ.get("RELAY_URL", "http://127.0.0.1:8000"), help="relay address")
    parser.add_argument("--token", default=os.environ.get("RELAY_TOKEN"), help="bearer token (or RELAY_TOKEN)")
    parser.add_argument("--streams", type=int, default=1, help="how many phones (default 1)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--video", type=Path, help="a video file to loop")
    source.add_argument("--camera", type=int, metavar="N", help="a webcam (OpenCV index), one phone only")
    source.add_argument(
        "--sample", choices=[*SAMPLES, "all"], default="all", help="sample footage (default all: phones take turns)"
    )
    parser.add_argument("--fps", type=float, default=10.0, help="pictures per second per phone (default 10)")
    parser.add_argument("--width", type=int, default=640, help="picture width in pixels, aspect kept (default 640)")
    parser.add_argument("--quality", type=int, default=70, help="JPEG quality 1-100 (default 70)")
    parser.add_argument("--format", choices=["binary", "json"], default="binary", help="frame form (default binary)")
    parser.add_argument("--seconds", type=float, default=0.0, help="stop after this long (default 0: run until Ctrl-C)")
    parser.add_argument("--name-prefix", default="Phone", help='phones are named "PREFIX 1", "PREFIX 2", …')
    parser.add_argument("-v", "--verbose", action="store_true", help="log connections and reconnects")
    args = parser.parse_args(argv)
    problems = [
        "--token is required (or set RELAY_TOKEN)" if not args.token else "",
        "--streams must be between 1 and 64" if not 1 <= args.streams <= 64 else "",
        "--fps must be between 0.1 and 60" if not 0.1 <= args.fps <= 60 else "",
        "--width must be between 16 and 4096" if not 16 <= args.width <= 4096 else "",
        "--quality must be between 1 and 100" if not 1 <= args.quality <= 100 else "",
        "--seconds must not be negative" if args.seconds < 0 else "",
        "a camera can feed one phone: use --streams 1 with --camera"
        if args.camera is not None and args.streams > 1
        else "",
        f"no such video file: {args.video}" if args.video is not None and not args.video.is_file() else "",
    ]
    for problem in problems:
        if problem:
            parser.error(problem)
    return args


def footage_for(args: argparse.Namespace, index: int) -> Callable[[], Footage]:
    """What phone number ``index`` (from 0) films."""
    origin: Path | int
    if args.camera is not None:
        origin = args.camera
    elif args.video is not None:
        origin = args.video
    else:
        names = list(SAMPLES) if args.sample == "all" else [args.sample]
        origin = sample_path(names[index % len(names)])
    return partial(Footage, origin, width=args.width, quality=args.quality)


async def run(args: argparse.Namespace) -> int:
    # `kill` (SIGTERM) stops it as cleanly as Ctrl-C does: by cancelling this task, so
    # every `finally` below runs on the loop instead of a KeyboardInterrupt landing anywhere.
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    camera = Camera(args.fps, args.format)
    phones = [
        Phone(f"{args.name_prefix} {i + 1}", RelayClient(args.url, args.token), footage_for(args, i), camera)
        for i in range(args.streams)
    ]
    stats = Stats(phones)
    tasks: list[asyncio.Task[None]] = []
    try:
        known = await phones[0].client.list_streams()
        for phone in phones:
            await phone.start(known)
            print(f"{phone.name}: registered {phone.stream_id}", flush=True)
        for phone in phones:
            tasks += [asyncio.create_task(phone.film()), asyncio.create_task(phone.listen())]
        tasks.append(asyncio.create_task(stats.keep_reporting()))
        done, _ = await asyncio.wait(tasks, timeout=args.seconds or None, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()  # a phone that failed (its footage, the relay refusing its token) fails the run
        return 0
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        print(stats.line(), flush=True)
        for phone in phones:
            await phone.client.close()


class Stats:
    """The stats line: totals so far, and the frame rate since the previous line."""

    def __init__(self, phones: list[Phone]) -> None:
        self.phones = phones
        self._since, self._sent_then = time.monotonic(), 0

    async def keep_reporting(self) -> None:
        while True:
            await asyncio.sleep(STATS_EVERY)
            print(self.line(), flush=True)

    def line(self) -> str:
        phones = self.phones
        sent = sum(p.client.stats.frames_sent for p in phones)
        now = time.monotonic()
        rate = (sent - self._sent_then) / max(now - self._since, 1e-9)
        self._since, self._sent_then = now, sent
        return (
            f"stats: {len(phones)} phones, {sum(p.client.connected for p in phones)} connected, "
            f"{sent} frames sent ({rate:.1f}/s now), "
            f"{sum(p.client.stats.frames_replaced for p in phones)} replaced by newer, "
            f"{sum(p.client.stats.frames_dropped_offline for p in phones)} dropped offline, "
            f"{sum(p.alerts_received for p in phones)} alerts received, "
            f"{sum(p.client.stats.reconnects for p in phones)} reconnect attempts"
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="simulate: %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
            return asyncio.run(run(args))
        return 0
    except AuthenticationError as error:
        print(f"simulate: the relay refused the token: {error}", file=sys.stderr)
    except (RelayError, LookupError, OSError) as error:
        print(f"simulate: {error}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
