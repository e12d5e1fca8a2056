"""``python -m benchmarks.nodes``: the sizing table's check, phones on one node and their consumers on two others.

docs/DEPLOYMENT.md's sizing table is arithmetic on one node's measured cost per
delivered frame (the ``phones`` workload of ``python -m benchmarks``).  Issue 9
asks for it to be checked by a scaled-down run with three nodes, because a frame
that crosses nodes costs more than one node's fan-out: a Redis publish on the
phone's node, Redis itself, and a read on each consumer's node.  This run
measures those costs on this machine:

* a ``redis-server`` of its own on a free port (its CPU is read from ``/proc``,
  so it must be a process of ours; ``--redis-url`` uses another, without its CPU),
  and three ``relay serve`` nodes on one PostgreSQL schema of the run's own
  (dropped at the end) and that Redis, without frame or alert rate limits (as
  ``benchmarks/relays.py`` starts ours);
* phase ``cross``: the phones (producers of :mod:`benchmarks.loadgen`, paced,
  40 KB frames) connect to node A; each phone's two consumers connect to node B
  and node C, so that every frame crosses Redis: the worst case, the table's
  last column;
* phase ``local``: the same phones and consumers all on node A (still on Redis:
  A publishes every frame although no other node listens, and reads it back, for
  it listens to the stream's channel for the phone's alerts);
* phase ``alone``: the same on a fourth node without Redis (``memory://``), the
  one-node case the table was computed from.

Each phase measures a window after a warm-up, as :mod:`benchmarks.fanout` does:
frames sent and delivered (every consumer subscribed before the first frame, so
a frame not delivered by the end of the drain is lost), latency, each node's and
redis-server's CPU from ``/proc`` and Redis's own byte counters (``INFO stats``).
From those: CPU µs per frame in on the phones' node, per delivered frame on the
consumers' nodes, the whole relay's per delivered frame against ``alone``, and
Redis's CPU per MB and MB/s.  The machine may be shared: the load average and the
CPU the rest of the machine took are printed beside the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import orjson
import redis.asyncio as redis_client

from benchmarks import api
from benchmarks.fanout import SETUP_TIMEOUT, START_DELAY, FanoutRun, _combine
from benchmarks.history_rest import database
from benchmarks.procstat import cpu_seconds, machine_busy_seconds, memory, pid_listening_on
from benchmarks.soak import Node, private_redis
from benchmarks.workers import Message, Worker, WorkerError, sleep_until, stop_all
from benchmarks.workloads import Timing
from relay.store import Store

REPO = Path(__file__).resolve().parent.parent
NO_LIMITS = ("--max-fps", "0", "--max-alerts-per-second", "0")
CONSUMERS_PER_PHONE = 2


@dataclass(frozen=True, slots=True)
class Size:
    phones: int
    fps: float
    frame_bytes: int
    timing: Timing


FULL = Size(phones=24, fps=15.0, frame_bytes=40 * 1024, timing=Timing(warmup=2.0, seconds=10.0, drain=2.0, pause=1.0))
SMOKE = Size(phones=3, fps=15.0, frame_bytes=40 * 1024, timing=Timing(warmup=0.5, seconds=1.5, drain=1.0, pause=0.2))


@dataclass(slots=True)
class NodeCost:
    """One node's share of a phase's window."""

    node: str
    role: str
    cpu_s: float
    cpu_pct: float
    frames_in: int
    """Frames the node received in the window from its producers (its ``/api/metrics``)."""
    frames_delivered: int
    """Frames its consumers received in the window (counted by the consumers)."""
    frames_dropped: int
    rss_mb: float
    us_per_frame_in: float | None
    us_per_delivered: float | None


@dataclass(slots=True)
class RedisCost:
    """redis-server's share of a phase's window: its CPU (None for a Redis not of ours) and its byte counters."""

    cpu_s: float | None
    cpu_pct: float | None
    mb_in: float
    mb_out: float
    mb_in_per_s: float
    mb_out_per_s: float
    cpu_ms_per_mb: float | None
    """redis-server CPU per MB through it (in + out: a publish read once, written to each subscribed node)."""
    mb_per_cpu_s: float | None
    """MB in + out per second of redis-server CPU: what one core of it carries at this frame size."""
    us_per_frame_in: float | None


@dataclass(slots=True)
class Phase:
    name: str
    summary: str
    delivery: FanoutRun
    nodes: list[NodeCost] = field(default_factory=list)
    redis: RedisCost | None = None
    relay_cpu_s: float | None = None
    relay_us_per_delivered: float | None = None
    """The CPU in the window of the nodes that carry the phase (idle ones apart) per frame delivered: what the
    sizing table's "relay CPU" scales with."""
    loadavg: tuple[float, float, float] | None = None


class Run:
    """The services, the nodes and a user's streams; each phase on new streams, so phases do not meet."""

    def __init__(self, size: Size, database_url: str, redis: Redis, folder: Path) -> None:
        self.size = size
        self.database_url = database_url
        self.redis = redis
        self.folder = folder
        self.cluster = [Node(index, database_url, redis.url, folder, NO_LIMITS) for index in range(3)]
        self.alone = Node(3, database_url, "memory://", folder, NO_LIMITS)
        self.token = ""
        self.user_id = ""
        self.store: Store | None = None

    async def phases(self) -> list[Phase]:
        self.store = await Store.open(self.database_url)  # migrates the schema once, before any node opens it
        try:
            issued = await self.store.users.add_or_issue_token("nodes")
            self.token, self.user_id = issued.token, issued.user_id
            await asyncio.gather(*(node.start() for node in [*self.cluster, self.alone]))
            a, b, c = self.cluster
            try:
                return [
                    await self._phase("cross", "phones on A, consumers on B and C (every frame over Redis)", a, [b, c]),
                    await self._phase("local", "phones and consumers on A (on Redis, nobody else listens)", a, [a, a]),
                    await self._phase(
                        "alone", "phones and consumers on one node without Redis", self.alone, [self.alone] * 2
                    ),
                ]
            finally:
                await asyncio.gather(*(node.stop() for node in [*self.cluster, self.alone]))
        finally:
            await self.store.close()

    async def _phase(self, name: str, summary: str, producer: Node, consumers: list[Node]) -> Phase:
        """One window: ``consumers`` are the nodes of each phone's first and second consumer, each served by a
        consumer worker of its own."""
        assert self.store is not None
        stream_ids = [
            (await self.store.streams.register(self.user_id, f"{name} phone {index}", "mobile", {})).id
            for index in range(self.size.phones)
        ]
        measured = self.cluster if producer in self.cluster else [producer]
        phase = Phase(name, summary, FanoutRun(name, "ours", 1))
        timing = self.size.timing
        common: Message = {
            "token": self.token,
            "warmup": timing.warmup,
            "seconds": timing.seconds,
            "drain": timing.drain,
            "deadline": SETUP_TIMEOUT * 2 + START_DELAY + timing.warmup + timing.seconds + timing.drain + 10,
        }
        latency_files = [self.folder / f"latency-{name}-{position}.f64" for position in range(CONSUMERS_PER_PHONE)]
        workers: list[Worker] = []
        try:
            for position, node in enumerate(consumers):
                specs = [{"stream": i, "streamId": stream, "form": "binary"} for i, stream in enumerate(stream_ids)]
                config = dict(
                    common,
                    url=_ws_url(node),
                    role="consumers",
                    consumers=specs,
                    latencyFile=str(latency_files[position]),
                )
                workers.append(await Worker.start("benchmarks.loadgen", f"consumers-{name}-{position}", config))
            await asyncio.gather(*(worker.expect("ready", SETUP_TIMEOUT) for worker in workers))
            config = dict(
                common,
                url=_ws_url(producer),
                role="producers",
                producers=[{"stream": i, "streamId": s, "form": "binary"} for i, s in enumerate(stream_ids)],
                frameBytes=self.size.frame_bytes,
                fps=self.size.fps,
                window=2,
            )
            producer_worker = await Worker.start("benchmarks.loadgen", f"producers-{name}", config)
            workers.append(producer_worker)
            await producer_worker.expect("ready", SETUP_TIMEOUT)
            t0 = time.time() + START_DELAY
            for worker in workers:
                await worker.send({"command": "go", "t0": t0})
            await sleep_until(t0 + timing.warmup)
            start = await self._sample(measured, workers)
            await sleep_until(t0 + timing.warmup + timing.seconds)
            end = await self._sample(measured, workers)
            phase.loadavg = os.getloadavg()
            results = await asyncio.gather(*(worker.expect("result", timing.drain + 15) for worker in workers))
        finally:
            await stop_all(workers)
        *consumer_results, producer_result = results
        latencies = np.concatenate([np.fromfile(path, dtype=np.float64) for path in latency_files])
        _combine(phase.delivery, timing, consumer_results, producer_result, latencies)
        self._costs(phase, start, end, measured, producer, consumers, consumer_results, workers)
        return phase

    async def _sample(self, nodes: list[Node], workers: list[Worker]) -> Message:
        """Counters at one edge of the window: CPU of every process of the run, each node's frame counters,
        Redis's byte counters, the machine's busy time."""
        metrics = await asyncio.gather(*(api.metrics(node.url, self.token) for node in nodes))
        stats = await self.redis.stats()
        return {
            "cpu": {node.index: cpu_seconds(_pid(node)) for node in nodes},
            "frames": {node.index: (m or {}).get("frames", {}) for node, m in zip(nodes, metrics, strict=True)},
            "redis_cpu": self.redis.cpu_seconds(),
            "redis_in": stats.get("total_net_input_bytes", 0),
            "redis_out": stats.get("total_net_output_bytes", 0),
            "loadgen": {worker.name: cpu_seconds(worker.pid) for worker in workers},
            "machine": machine_busy_seconds(),
            "time": time.time(),
        }

    def _costs(
        self,
        phase: Phase,
        start: Message,
        end: Message,
        measured: list[Node],
        producer: Node,
        consumers: list[Node],
        consumer_results: list[Message],
        workers: list[Worker],
    ) -> None:
        seconds = end["time"] - start["time"]
        delivered_by_node: dict[int, int] = {}
        for node, result in zip(consumers, consumer_results, strict=True):
            delivered_by_node[node.index] = delivered_by_node.get(node.index, 0) + result["windowFrames"]
        for node in measured:
            cpu = end["cpu"][node.index] - start["cpu"][node.index]
            frames_in = _delta(start, end, node.index, "received")
            delivered = delivered_by_node.get(node.index, 0)
            roles = (["phones"] if node is producer else []) + (
                ["consumers"] if node.index in delivered_by_node else []
            )
            phase.nodes.append(
                NodeCost(
                    node="ABCD"[node.index],
                    role=" + ".join(roles) or "idle",
                    cpu_s=round(cpu, 3),
                    cpu_pct=round(100 * cpu / seconds, 1),
                    frames_in=frames_in,
                    frames_delivered=delivered,
                    frames_dropped=_delta(start, end, node.index, "dropped"),
                    rss_mb=round(memory(_pid(node)).rss_mb, 1),
                    us_per_frame_in=round(cpu * 1e6 / frames_in, 1) if frames_in else None,
                    us_per_delivered=round(cpu * 1e6 / delivered, 1) if delivered else None,
                )
            )
        window_frames = phase.delivery.window_frames or 0
        phase.relay_cpu_s = round(sum(cost.cpu_s for cost in phase.nodes if cost.role != "idle"), 3)
        phase.relay_us_per_delivered = round(phase.relay_cpu_s * 1e6 / window_frames, 1) if window_frames else None
        if producer in self.cluster:
            phase.redis = _redis_cost(start, end, seconds, _delta(start, end, producer.index, "received"))
        ours = sum(end["cpu"][n.index] - start["cpu"][n.index] for n in measured)
        ours += sum(end["loadgen"][w.name] - start["loadgen"][w.name] for w in workers)
        if start["redis_cpu"] is not None and end["redis_cpu"] is not None:
            ours += end["redis_cpu"] - start["redis_cpu"]
        for worker in workers:
            busy = end["loadgen"][worker.name] - start["loadgen"][worker.name]
            phase.delivery.loadgen_cpu_pct[worker.name] = round(100 * busy / seconds, 1)
        others = end["machine"] - start["machine"] - ours
        phase.delivery.others_cpu_pct = round(max(0.0, 100 * others / seconds), 1)
        phase.delivery.relay_cpu_s = phase.relay_cpu_s


def _redis_cost(start: Message, end: Message, seconds: float, frames_in: int) -> RedisCost:
    mb_in = (end["redis_in"] - start["redis_in"]) / 1e6
    mb_out = (end["redis_out"] - start["redis_out"]) / 1e6
    cpu = None
    if start["redis_cpu"] is not None and end["redis_cpu"] is not None:
        cpu = end["redis_cpu"] - start["redis_cpu"]
    through = mb_in + mb_out
    return RedisCost(
        cpu_s=None if cpu is None else round(cpu, 3),
        cpu_pct=None if cpu is None else round(100 * cpu / seconds, 1),
        mb_in=round(mb_in, 2),
        mb_out=round(mb_out, 2),
        mb_in_per_s=round(mb_in / seconds, 2),
        mb_out_per_s=round(mb_out / seconds, 2),
        cpu_ms_per_mb=round(cpu * 1e3 / through, 3) if cpu is not None and through else None,
        mb_per_cpu_s=round(through / cpu, 1) if cpu else None,
        us_per_frame_in=round(cpu * 1e6 / frames_in, 1) if cpu is not None and frames_in else None,
    )


def _delta(start: Message, end: Message, index: int, counter: str) -> int:
    return int(end["frames"][index].get(counter, 0)) - int(start["frames"][index].get(counter, 0))


def _pid(node: Node) -> int:
    assert node.process is not None
    return node.process.pid


def _ws_url(node: Node) -> str:
    return f"ws://127.0.0.1:{node.port}/api/streams/ws"


# ---------------------------------------------------------------------------------------------- Redis


class Redis:
    """The run's Redis: a ``redis-server`` of our own (its CPU measured) or one at a URL (its CPU if it is
    a process of this user on this machine)."""

    def __init__(self, url: str, pid: int | None) -> None:
        self.url = url
        self.pid = pid

    def cpu_seconds(self) -> float | None:
        return None if self.pid is None else cpu_seconds(self.pid)

    async def stats(self) -> dict[str, Any]:
        client = redis_client.from_url(self.url)
        try:
            stats: dict[str, Any] = await client.info("stats")
        finally:
            await client.aclose()
        return stats


@contextlib.asynccontextmanager
async def redis_for(url: str | None) -> AsyncIterator[Redis]:
    if url is not None:
        yield Redis(url, pid_listening_on(urlsplit(url).port or 6379))
        return
    async with private_redis("pass --redis-url, or install it (its CPU is measured)") as server:
        assert server.process is not None
        yield Redis(server.url, server.process.pid)


def render(report: dict[str, Any]) -> str:
    size = report["size"]
    lines = [
        f"{size['phones']} phones × {CONSUMERS_PER_PHONE} consumers, {size['frame_bytes'] // 1024} KB at "
        f"{size['fps']:g} fps; window {size['timing']['seconds']:g} s after {size['timing']['warmup']:g} s; "
        f"load average {report['loadavg_before']} before, {report['loadavg_after']} after "
        f"({report['machine']['cpus']} cores)",
        "",
    ]
    rows = []
    for phase in report["phases"]:
        d = phase["delivery"]
        redis = phase["redis"] or {}
        rows.append(
            [
                phase["name"],
                d["frames_sent"],
                d["frames_delivered"],
                f"{d['lost_total']} ({d['lost_pct']} %)",
                d["latency_ms"].get("p50"),
                d["latency_ms"].get("p99"),
                phase["relay_cpu_s"],
                phase["relay_us_per_delivered"],
                redis.get("cpu_s", "—"),
                redis.get("mb_in_per_s", "—"),
                redis.get("mb_out_per_s", "—"),
                redis.get("cpu_ms_per_mb", "—"),
                d["others_cpu_pct"],
            ]
        )
    lines.append(
        _table(
            [
                "phase",
                "sent",
                "delivered",
                "lost (run)",
                "p50 ms",
                "p99 ms",
                "relay CPU s",
                "relay µs/delivered",
                "redis CPU s",
                "redis MB/s in",
                "MB/s out",
                "redis ms/MB",
                "others %",
            ],
            rows,
        )
    )
    lines.append("")
    node_rows = [
        [
            phase["name"],
            n["node"],
            n["role"],
            n["cpu_s"],
            n["cpu_pct"],
            n["frames_in"],
            n["frames_delivered"],
            n["frames_dropped"],
            n["us_per_frame_in"],
            n["us_per_delivered"],
            n["rss_mb"],
        ]
        for phase in report["phases"]
        for n in phase["nodes"]
    ]
    header = ["phase", "node", "role", "CPU s", "CPU %", "frames in", "delivered", "dropped", "µs/in", "µs/delivered"]
    lines.append(_table([*header, "RSS MB"], node_rows))
    ratios = report["ratios"]
    lines += [
        "",
        f"relay CPU per delivered frame, cross / alone: {ratios['cross_over_alone']}; local / alone: "
        f"{ratios['local_over_alone']}",
        f"redis-server carried {ratios['redis_mb_per_cpu_s']} MB (in + out) per CPU second in the cross phase",
        f"result: {'ok' if not report['errors'] else 'errors: ' + '; '.join(report['errors'])}",
    ]
    return "\n".join(lines)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    cells = [header, *[["—" if value is None else str(value) for value in row] for row in rows]]
    widths = [max(len(row[column]) for row in cells) for column in range(len(header))]
    out = []
    for index, row in enumerate(cells):
        out.append("  ".join(value.rjust(width) for value, width in zip(row, widths, strict=True)))
        if index == 0:
            out.append("  ".join("-" * width for width in widths))
    return "\n".join(out)


def _ratio(top: float | None, bottom: float | None) -> float | None:
    return round(top / bottom, 2) if top is not None and bottom else None


def summary(phases: list[Phase]) -> dict[str, Any]:
    """The ratios the sizing table needs, and every error of the phases (unfinite figures among them)."""
    by_name = {phase.name: phase for phase in phases}
    cross, local, alone = by_name["cross"], by_name["local"], by_name["alone"]
    errors = [f"{phase.name}: {error}" for phase in phases for error in phase.delivery.errors]
    for phase in phases:
        numbers = [phase.relay_cpu_s, phase.relay_us_per_delivered, *phase.delivery.latency_ms.values()]
        if not all(value is not None and math.isfinite(value) for value in numbers):
            errors.append(f"{phase.name}: a figure could not be measured ({numbers})")
    return {
        "ratios": {
            "cross_over_alone": _ratio(cross.relay_us_per_delivered, alone.relay_us_per_delivered),
            "local_over_alone": _ratio(local.relay_us_per_delivered, alone.relay_us_per_delivered),
            "redis_mb_per_cpu_s": cross.redis.mb_per_cpu_s if cross.redis else None,
        },
        "errors": errors,
    }


async def nodes(size: Size, redis_url: str | None) -> dict[str, Any]:
    loadavg_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-nodes-") as folder:
        async with database("postgresql") as database_url, redis_for(redis_url) as redis:
            try:
                phases = await Run(size, database_url, redis, Path(folder)).phases()
            except (WorkerError, RuntimeError, OSError) as error:
                raise SystemExit(f"the run failed: {error}\n{_logs(Path(folder))}") from error
    return {
        "size": asdict(size),
        "phases": [asdict(phase) for phase in phases],
        **summary(phases),
        "loadavg_before": [round(value, 2) for value in loadavg_before],
        "loadavg_after": [round(value, 2) for value in os.getloadavg()],
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "node": platform.node()},
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def _logs(folder: Path) -> str:
    """The end of each node's log, to say why a run failed."""
    return "\n".join(
        f"--- {path.name}:\n{path.read_text(errors='replace')[-1500:]}" for path in sorted(folder.glob("node*.log"))
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.nodes", description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="3 phones, a 1.5 s window: seconds (what CI runs)")
    parser.add_argument("--phones", type=int, help=f"phones (default {FULL.phones}; smoke {SMOKE.phones})")
    parser.add_argument("--fps", type=float, help=f"frames per second per phone (default {FULL.fps:g})")
    parser.add_argument("--frame-kb", type=float, help=f"frame size (default {FULL.frame_bytes // 1024})")
    parser.add_argument("--seconds", type=float, help=f"measured window (default {FULL.timing.seconds:g})")
    parser.add_argument("--redis-url", help="a Redis that runs (default: a redis-server of the run's own)")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args(argv)
    base = SMOKE if args.smoke else FULL
    size = Size(
        phones=args.phones or base.phones,
        fps=args.fps or base.fps,
        frame_bytes=round(args.frame_kb * 1024) if args.frame_kb else base.frame_bytes,
        timing=Timing(base.timing.warmup, args.seconds or base.timing.seconds, base.timing.drain, base.timing.pause),
    )
    report = asyncio.run(nodes(size, args.redis_url))
    report["command"] = " ".join(sys.argv)
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        report["commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    print(render(report))
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
