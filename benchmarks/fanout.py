"""One fan-out run: a workload against one relay, measured.

The parent registers the streams, starts the consumer workers (the consumers
spread over a few processes) and the producer worker, gives them one shared
start time, and meanwhile reads the relay's CPU time and peak RSS from ``/proc``
at the start and the end of the measured window, so warm-up, set-up and drain
are not counted.  Against our relay it also reads ``GET /api/metrics`` before
and after, for the conversions per frame and the frames its queues dropped.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import api
from benchmarks.procstat import cpu_seconds, machine_busy_seconds, memory, reset_peak
from benchmarks.relays import Target
from benchmarks.workers import Message, Worker, WorkerError, sleep_until, stop_all
from benchmarks.workloads import Timing, Workload

SETUP_TIMEOUT = 20.0
START_DELAY = 0.5
"""Seconds between the ``go`` command and the shared start time, for every worker to get it."""


@dataclass
class FanoutRun:
    """The figures of one run; None where a figure could not be measured."""

    workload: str
    relay: str
    round: int
    delivered_fps: float | None = None
    delivered_mbps: float | None = None
    latency_ms: dict[str, float | None] = field(default_factory=dict)
    sent_fps: float | None = None
    window_frames: int | None = None
    window_image_bytes: int | None = None
    frames_sent: int | None = None
    frames_expected: int | None = None
    frames_delivered: int | None = None
    lost_gaps: int | None = None
    lost_total: int | None = None
    lost_pct: float | None = None
    out_of_order: int | None = None
    relay_cpu_s: float | None = None
    cpu_s_per_gb: float | None = None
    cpu_us_per_frame: float | None = None
    peak_rss_mb: float | None = None
    rss_after_mb: float | None = None
    conversions_per_frame: float | None = None
    frames_dropped: int | None = None
    loadgen_cpu_pct: dict[str, float] = field(default_factory=dict)
    """Each load-generator process's CPU use in the window: near 100 % means it, not the relay, set the pace."""
    others_cpu_pct: float | None = None
    """CPU the rest of the machine (other users, the kernel's own threads) took in the window, in % of one core."""
    errors: list[str] = field(default_factory=list)


async def run_fanout(
    target: Target, workload: Workload, timing: Timing, round_number: int, consumer_processes: int
) -> FanoutRun:
    """Run ``workload`` once against ``target``; failures are recorded in ``errors``, not raised."""
    run = FanoutRun(workload.name, target.name, round_number)
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as folder:
        try:
            await _measure(run, target, workload, timing, consumer_processes, Path(folder))
        except (WorkerError, RuntimeError, OSError) as error:
            run.errors.append(str(error))
    return run


async def _measure(
    run: FanoutRun, target: Target, workload: Workload, timing: Timing, consumer_processes: int, folder: Path
) -> None:
    stream_ids = [
        await api.register_stream(target.url, target.token, f"bench-{workload.name}-{index}")
        for index in range(workload.producers)
    ]
    specs = [
        {"stream": index, "streamId": stream_id, "form": workload.consumer_form(position)}
        for index, stream_id in enumerate(stream_ids)
        for position in range(workload.consumers_per_stream)
    ]
    share = min(consumer_processes, len(specs))
    total = timing.warmup + timing.seconds + timing.drain
    common: Message = {
        "url": target.ws_url,
        "token": target.token,
        "warmup": timing.warmup,
        "seconds": timing.seconds,
        "drain": timing.drain,
        "deadline": SETUP_TIMEOUT * 2 + START_DELAY + total + 10,
    }
    latency_files = [folder / f"latency-{index}.f64" for index in range(share)]
    workers: list[Worker] = []
    try:
        for index in range(share):
            config = dict(
                common, role="consumers", consumers=specs[index::share], latencyFile=str(latency_files[index])
            )
            workers.append(await Worker.start("benchmarks.loadgen", f"consumers-{index}", config))
        await asyncio.gather(*(worker.expect("ready", SETUP_TIMEOUT) for worker in workers))
        producers = [
            {"stream": index, "streamId": stream_id, "form": workload.producer_form}
            for index, stream_id in enumerate(stream_ids)
        ]
        config = dict(
            common,
            role="producers",
            producers=producers,
            frameBytes=workload.frame_bytes,
            fps=workload.fps,
            window=2,
        )
        producer = await Worker.start("benchmarks.loadgen", "producers", config)
        workers.append(producer)
        await producer.expect("ready", SETUP_TIMEOUT)

        before = await api.metrics(target.url, target.token)
        t0 = time.time() + START_DELAY
        for worker in workers:
            await worker.send({"command": "go", "t0": t0})
        await sleep_until(t0 + timing.warmup)
        cpu_start = cpu_seconds(target.pid)
        peak_reset = reset_peak(target.pid)
        loadgen_start = {worker.name: cpu_seconds(worker.pid) for worker in workers}
        machine_start = machine_busy_seconds()
        await sleep_until(t0 + timing.warmup + timing.seconds)
        cpu_end = cpu_seconds(target.pid)
        machine_end = machine_busy_seconds()
        used = memory(target.pid)
        for worker in workers:
            busy = (cpu_seconds(worker.pid) - loadgen_start[worker.name]) / timing.seconds
            run.loadgen_cpu_pct[worker.name] = round(100 * busy, 1)
        ours = cpu_end - cpu_start + sum(run.loadgen_cpu_pct.values()) * timing.seconds / 100
        run.others_cpu_pct = round(max(0.0, 100 * (machine_end - machine_start - ours) / timing.seconds), 1)
        results = await asyncio.gather(*(worker.expect("result", timing.drain + 15) for worker in workers))
        after = await api.metrics(target.url, target.token)
    finally:
        await stop_all(workers)

    *consumer_results, producer_result = results
    latencies = np.concatenate([np.fromfile(path, dtype=np.float64) for path in latency_files])
    _combine(run, timing, consumer_results, producer_result, latencies)
    run.relay_cpu_s = round(cpu_end - cpu_start, 3)
    if run.window_frames and run.window_image_bytes:
        run.cpu_s_per_gb = round(run.relay_cpu_s / (run.window_image_bytes / 1e9), 3)
        run.cpu_us_per_frame = round(run.relay_cpu_s * 1e6 / run.window_frames, 2)
    run.peak_rss_mb = round(used.peak_rss_mb, 1) if peak_reset else None
    run.rss_after_mb = round(used.rss_mb, 1)
    if before is not None and after is not None:
        received = after["frames"]["received"] - before["frames"]["received"]
        conversions = after["frames"]["conversions"] - before["frames"]["conversions"]
        run.conversions_per_frame = round(conversions / received, 3) if received else None
        run.frames_dropped = after["frames"]["dropped"] - before["frames"]["dropped"]


def _combine(
    run: FanoutRun,
    timing: Timing,
    consumer_results: list[Message],
    producer_result: Message,
    latencies: np.ndarray[Any, np.dtype[np.float64]],
) -> None:
    """The run's delivery figures from what the workers saw (loss per consumer, against its stream)."""
    sent: dict[str, int] = producer_result["sent"]
    consumers = [consumer for result in consumer_results for consumer in result["consumers"]]
    run.window_frames = sum(result["windowFrames"] for result in consumer_results)
    run.window_image_bytes = sum(result["windowImageBytes"] for result in consumer_results)
    run.frames_sent = sum(sent.values())
    run.sent_fps = round(run.frames_sent / producer_result["seconds"], 1)
    run.frames_expected = sum(sent[str(consumer["stream"])] for consumer in consumers)
    run.frames_delivered = sum(consumer["got"] for consumer in consumers)
    run.lost_total = sum(max(0, sent[str(consumer["stream"])] - consumer["got"]) for consumer in consumers)
    run.lost_gaps = sum(consumer["gaps"] for consumer in consumers)
    run.out_of_order = sum(consumer["outOfOrder"] for consumer in consumers)
    run.lost_pct = round(100 * run.lost_total / run.frames_expected, 3) if run.frames_expected else None
    run.delivered_fps = round(run.window_frames / timing.seconds, 1)
    run.delivered_mbps = round(run.window_image_bytes / timing.seconds / 1e6, 2)
    run.latency_ms = _percentiles(latencies)
    run.errors.extend(producer_result["errors"])
    run.errors.extend(consumer["error"] for consumer in consumers if consumer["error"])
    bad = sum(consumer["bad"] for consumer in consumers)
    if bad:
        run.errors.append(f"{bad} frames arrived without their benchmark stamp")


def _percentiles(latencies: np.ndarray[Any, np.dtype[np.float64]]) -> dict[str, float | None]:
    """p50, p90, p99 and max as ``fanout.js`` takes them: the sample at floor(p × n) of the sorted list."""
    if not len(latencies):
        return {"p50": None, "p90": None, "p99": None, "max": None, "n": 0}
    ordered = np.sort(latencies)

    def at(p: float) -> float:
        return round(float(ordered[min(len(ordered) - 1, int(p * len(ordered)))]), 3)

    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": round(float(ordered[-1]), 3), "n": len(ordered)}
