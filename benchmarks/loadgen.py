"""The fan-out load generator: producer and consumer worker processes.

``python -m benchmarks.loadgen CONFIG`` runs either the producers or a share of
the consumers of one workload (``CONFIG["role"]``), as a worker of
:mod:`benchmarks.workers`:

1. connect and ``register`` (producers) or ``subscribe`` (consumers), then
   report ``ready``;
2. wait for ``go``, which carries the wall-clock start ``t0`` every worker shares;
3. producers send from ``t0`` for ``warmup + seconds``; consumers count what
   arrives, and the figures of the measured window ``[t0 + warmup, t0 + warmup +
   seconds)`` are kept apart from the whole run's;
4. everyone stays connected for ``drain`` more seconds (late frames still count
   as delivered, frames not there by then as lost), then reports ``result``.

At "max rate" (``fps`` 0) a producer keeps at most ``window`` frames not yet
flushed to its socket: ``window`` coroutines each await the ``websockets``
``send``, which returns once the frame is written to the kernel (``write_limit``
0), like the send callback of ``fanout.js``.  Paced producers send on a clock,
catching up at most 3 frames in a burst when late, and skip slots after that.
"""

from __future__ import annotations

import array
import asyncio
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from benchmarks.frames import FrameMaker, read_frame
from benchmarks.workers import Commands, Message, WorkerError, emit, run_worker, sleep_until

CATCH_UP_BURST = 3
"""Frames a paced producer sends back to back when its clock slipped, as ``fanout.js``."""


async def open_client(url: str, token: str, first: Message, reply: str, **options: Any) -> ClientConnection:
    """Connect with ``?token=``, send ``first`` and wait for the ``reply`` type (auth-ok is skipped)."""
    ws = await connect(
        f"{url}?token={token}", max_size=None, compression=None, ping_interval=None, close_timeout=1, **options
    )
    await ws.send(orjson.dumps(first).decode())
    while True:
        message = orjson.loads(await asyncio.wait_for(ws.recv(decode=False), 10))
        if message.get("type") == reply:
            return ws
        if message.get("type") == "error":
            await ws.close()
            raise WorkerError(f"relay answered {first['type']} with {message}")


# --------------------------------------------------------------------------- consumers


@dataclass(slots=True)
class ConsumerStats:
    """One consumer's view of its stream over the whole run."""

    stream: int
    form: str
    expected_next: int = 0
    got: int = 0
    gaps: int = 0
    out_of_order: int = 0
    bad: int = 0
    error: str | None = None


@dataclass(slots=True)
class Window:
    """Frames, image bytes and latencies (ms) received inside the measured window."""

    start_ms: float
    end_ms: float
    frames: int = 0
    image_bytes: int = 0
    latency_ms: array.array[float] = field(default_factory=lambda: array.array("d"))


async def consume(ws: ClientConnection, stats: ConsumerStats, window: Window) -> None:
    """Read frames until cancelled, counting gaps in the sequence and latency from the stamp."""
    recv = ws.recv
    try:
        while True:
            message = await recv(decode=False)
            now_ms = time.time() * 1000
            try:
                frame = read_frame(message)
            except ValueError:
                stats.bad += 1
                continue
            if frame is None:
                continue
            stats.got += 1
            sequence = frame.sequence
            if sequence >= stats.expected_next:
                stats.gaps += sequence - stats.expected_next
                stats.expected_next = sequence + 1
            else:
                stats.out_of_order += 1
            if window.start_ms <= now_ms < window.end_ms:
                window.frames += 1
                window.image_bytes += frame.image_bytes
                window.latency_ms.append(now_ms - frame.sent_ms)
    except ConnectionClosed as closed:
        stats.error = f"consumer connection closed: {closed}"


async def run_consumers(config: Message) -> None:
    url, token = config["url"], config["token"]
    stats = [ConsumerStats(spec["stream"], spec["form"]) for spec in config["consumers"]]
    sockets = await asyncio.gather(
        *(
            open_client(
                url,
                token,
                {
                    "type": "subscribe",
                    "clientType": "dashboard",
                    "streamId": spec["streamId"],
                    "consumes": ["video-frame"],
                    "frameFormat": spec["form"],
                },
                "subscribed",
            )
            for spec in config["consumers"]
        )
    )
    commands = await Commands.open()
    emit("ready")
    t0 = (await commands.next("go"))["t0"]
    start_ms = (t0 + config["warmup"]) * 1000
    window = Window(start_ms, start_ms + config["seconds"] * 1000)
    readers = [asyncio.create_task(consume(ws, one, window)) for ws, one in zip(sockets, stats, strict=True)]
    await sleep_until(t0 + config["warmup"] + config["seconds"] + config["drain"])
    for reader in readers:
        reader.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    await asyncio.to_thread(Path(config["latencyFile"]).write_bytes, window.latency_ms.tobytes())
    emit(
        "result",
        consumers=[
            {
                "stream": one.stream,
                "form": one.form,
                "got": one.got,
                "gaps": one.gaps,
                "outOfOrder": one.out_of_order,
                "bad": one.bad,
                "error": one.error,
            }
            for one in stats
        ],
        windowFrames=window.frames,
        windowImageBytes=window.image_bytes,
    )
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


# --------------------------------------------------------------------------- producers


@dataclass(slots=True)
class Producer:
    """One producer connection and what it has handed to its socket."""

    ws: ClientConnection
    maker: FrameMaker
    sent: int = 0
    relay_errors: list[str] = field(default_factory=list)

    async def send_next(self) -> None:
        sequence = self.sent
        self.sent += 1
        await self.ws.send(self.maker.build(sequence, time.time() * 1000))

    async def at_max_rate(self, until: float, window: int) -> None:
        """Keep ``window`` frames in flight until ``until`` (wall clock)."""

        async def lane() -> None:
            while time.time() < until:
                await self.send_next()

        await asyncio.gather(*(lane() for _ in range(window)))

    async def paced(self, start: float, until: float, fps: float) -> None:
        """Send at ``fps`` from ``start`` to ``until`` (wall clock)."""
        interval = 1 / fps
        slot = 0
        while (now := time.time()) < until:
            burst = 0
            while now >= start + slot * interval and burst < CATCH_UP_BURST and now < until:
                await self.send_next()
                slot += 1
                burst += 1
                now = time.time()
            if now >= start + slot * interval:
                slot = math.floor((now - start) / interval)
            await asyncio.sleep(max(0.0, start + slot * interval - time.time()))

    async def listen(self) -> None:
        """Read what the relay sends the producer, keeping its errors (a rate limit, say)."""
        try:
            async for raw in self.ws:
                message = orjson.loads(raw)
                if message.get("type") == "error":
                    self.relay_errors.append(f"{message.get('code')}: {message.get('message')}")
        except ConnectionClosed as closed:
            self.relay_errors.append(f"producer connection closed: {closed}")


async def run_producers(config: Message) -> None:
    url, token, frame_bytes = config["url"], config["token"], config["frameBytes"]
    producers = []
    for spec in config["producers"]:
        ws = await open_client(
            url,
            token,
            {"type": "register", "clientType": "mobile", "streamId": spec["streamId"], "produces": ["video-frame"]},
            "registered",
            write_limit=0,
        )
        producers.append(Producer(ws, FrameMaker(spec["stream"], spec["streamId"], frame_bytes, spec["form"])))
    listeners = [asyncio.create_task(producer.listen()) for producer in producers]
    commands = await Commands.open()
    emit("ready")
    t0 = (await commands.next("go"))["t0"]
    until = t0 + config["warmup"] + config["seconds"]
    stop = until + config["drain"]
    await sleep_until(t0)
    fps = config["fps"]
    sending = [
        producer.paced(t0, until, fps) if fps > 0 else producer.at_max_rate(until, config["window"])
        for producer in producers
    ]
    errors = []
    try:
        async with asyncio.timeout_at(asyncio.get_running_loop().time() + (stop - time.time())):
            await asyncio.gather(*sending)
    except TimeoutError:
        errors.append("frames still not flushed to the relay at the end of the drain")
    await sleep_until(stop)
    for listener in listeners:
        listener.cancel()
    emit(
        "result",
        sent={str(p.maker.stream_index): p.sent for p in producers},
        seconds=until - t0,
        errors=errors + [error for p in producers for error in p.relay_errors],
    )
    await asyncio.gather(*(p.ws.close() for p in producers), return_exceptions=True)


async def main(config: Message) -> None:
    if config["role"] == "consumers":
        await run_consumers(config)
    else:
        await run_producers(config)


if __name__ == "__main__":
    run_worker(main)
