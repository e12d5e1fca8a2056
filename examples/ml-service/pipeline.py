"""Frames in, alerts out: always the newest frame, never a backlog, never on the event loop.

Frames arrive faster than detectors run (HOG alone can take a large share of a
core).  Queueing them would make the service fall further and further behind
real time, so each stream has one slot for its newest unanalysed frame: a
newer frame replaces a waiting one (counted as *skipped*), and when a stream's
analysis finishes it takes whatever is newest.  One frame per stream is in
analysis at a time, in a thread pool (OpenCV releases the GIL), so streams are
analysed in parallel and the event loop stays free for the relay connection.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import sys
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

from detectors import Analysis, Analyzer
from policy import AlertDraft, AlertPolicy

from relay.client import AlertQueueFull, Frame, RelayClient

log = logging.getLogger("ml-service")


@dataclass(slots=True)
class Throughput:
    """What the service did since the last report: frames analysed, time taken, lag, alerts."""

    started: float = field(default_factory=time.monotonic)
    analysed: int = 0
    skipped: int = 0
    alerts: int = 0
    seconds: list[float] = field(default_factory=list)
    lags_ms: deque[int] = field(default_factory=lambda: deque(maxlen=1000))

    def line(self, streams: int) -> str:
        """One status line, then counting starts again."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        lags = sorted(self.lags_ms)
        lag = f"lag median {statistics.median(lags):.0f} ms, max {lags[-1]} ms" if lags else "no lag yet"
        each = f" ({1000 * statistics.fmean(self.seconds):.0f} ms each)" if self.seconds else ""
        text = (
            f"ml: {streams} streams, {self.analysed / elapsed:.1f} frames/s analysed{each}, {lag}, "
            f"{self.skipped} stale frames skipped, {self.alerts} alerts sent"
        )
        self.started, self.analysed, self.skipped, self.alerts = time.monotonic(), 0, 0, 0
        self.seconds.clear()
        self.lags_ms.clear()
        return text


class Pipeline:
    """See the module docstring.  ``names`` gives a stream's device name for printed lines."""

    def __init__(
        self,
        client: RelayClient,
        executor: Executor,
        kinds: tuple[str, ...],
        policy: AlertPolicy,
        names: Callable[[str], str],
    ) -> None:
        self.client = client
        self.executor = executor
        self.kinds = kinds
        self.policy = policy
        self.names = names
        self.stats = Throughput()
        self._newest: dict[str, Frame] = {}
        self._analyzers: dict[str, Analyzer] = {}
        self._working: dict[str, asyncio.Task[None]] = {}

    def offer(self, frame: Frame) -> None:
        """A frame arrived: it waits in its stream's slot (replacing an older one) for analysis."""
        if frame.stream_id in self._newest:
            self.stats.skipped += 1
        self._newest[frame.stream_id] = frame
        if frame.stream_id not in self._working:
            task = asyncio.create_task(self._analyse_stream(frame.stream_id))
            self._working[frame.stream_id] = task

    async def drain(self) -> None:
        """Return once every frame offered so far has been analysed (or skipped for a newer one)."""
        while self._working:
            await asyncio.gather(*self._working.values(), return_exceptions=True)

    async def close(self) -> None:
        """Stop analysing; frames waiting are dropped."""
        for task in self._working.values():
            task.cancel()
        await asyncio.gather(*self._working.values(), return_exceptions=True)

    async def _analyse_stream(self, stream_id: str) -> None:
        loop = asyncio.get_running_loop()
        try:
            analyzer = self._analyzers.get(stream_id)
            if analyzer is None:
                analyzer = await loop.run_in_executor(self.executor, Analyzer, self.kinds)
                self._analyzers[stream_id] = analyzer
            while (frame := self._newest.pop(stream_id, None)) is not None:
                try:
                    analysis = await loop.run_in_executor(self.executor, analyzer.analyze, frame.data)
                except ValueError as error:
                    log.warning("stream %s: %s", stream_id, error)
                    continue
                self._count(analysis, frame)
                for draft in self.policy.decide(stream_id, analysis, frame.timestamp, time.monotonic()):
                    await self._send(draft)
        except Exception:  # a bug: say so; the stream's next frame starts afresh
            log.exception("analysis of stream %s failed", stream_id)
        finally:
            del self._working[stream_id]

    def _count(self, analysis: Analysis, frame: Frame) -> None:
        self.stats.analysed += 1
        self.stats.seconds.append(analysis.seconds)
        self.stats.lags_ms.append(time.time_ns() // 1_000_000 - frame.timestamp)

    async def _send(self, draft: AlertDraft) -> None:
        try:
            await self.client.send_alert(
                draft.severity,
                draft.message,
                stream_id=draft.stream_id,
                metadata=draft.metadata,
                frame_timestamp=draft.frame_timestamp,
            )
        except AlertQueueFull as error:  # the relay has been away for long: say so, loudly
            print(f"ml: alert NOT queued for {draft.stream_id}: {error}", file=sys.stderr, flush=True)
            return
        self.stats.alerts += 1
        meta = draft.metadata
        print(
            f"ml: ALERT {draft.severity} {meta['objectType']} {meta['confidence']:.2f} "
            f"{draft.message} -> {self.names(draft.stream_id)} ({draft.stream_id})",
            flush=True,
        )
