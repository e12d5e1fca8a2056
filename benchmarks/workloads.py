"""The workloads of issue 5's table, at full size and as a smoke test.

A workload says what the clients do; :class:`Timing` says for how long.  The
smoke versions keep every workload's shape (fan-out, form, paced or max rate)
at tiny sizes, so that CI runs the whole suite in seconds and it cannot rot.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from benchmarks.frames import FrameForm

ConsumerForms = Literal["json", "binary", "mixed"]


@dataclass(frozen=True, slots=True)
class Workload:
    """P producers, each with C consumers of its stream, sending frames of ``frame_kb``."""

    name: str
    summary: str
    producers: int
    consumers_per_stream: int
    frame_kb: float
    fps: float
    """Frames per second per producer; 0 for as fast as the relay takes them."""
    producer_form: FrameForm
    consumer_forms: ConsumerForms
    """``mixed``: the first half of each stream's consumers ask for JSON, the rest for binary."""

    @property
    def frame_bytes(self) -> int:
        return round(self.frame_kb * 1024)

    def consumer_form(self, index: int) -> FrameForm:
        """The form the ``index``-th consumer of a stream asks for."""
        if self.consumer_forms == "mixed":
            return "json" if index < self.consumers_per_stream // 2 else "binary"
        return self.consumer_forms


@dataclass(frozen=True, slots=True)
class Timing:
    warmup: float
    """Seconds sent before the measured window (connections settle, queues fill)."""
    seconds: float
    """The measured window."""
    drain: float
    """Seconds after sending stops in which late frames still count as delivered."""
    pause: float
    """Seconds between runs, for the last run's connections to close on both sides."""


WORKLOADS: tuple[Workload, ...] = (
    Workload("w1", "1 × 10, 100 KB, max rate, binary", 1, 10, 100, 0, "binary", "binary"),
    Workload("w2", "4 × 3, 200 KB, 30 fps, binary", 4, 3, 200, 30, "binary", "binary"),
    Workload("w2-json", "4 × 3, 200 KB, 30 fps, JSON", 4, 3, 200, 30, "json", "json"),
    Workload("w4", "1 × 10, 2 KB, max rate, binary", 1, 10, 2, 0, "binary", "binary"),
    Workload("mixed", "1 × 10, 100 KB, max rate, binary in, 5 JSON + 5 binary out", 1, 10, 100, 0, "binary", "mixed"),
    Workload("paced-100k", "1 × 10, 100 KB, 300 fps, binary (all delivered)", 1, 10, 100, 300, "binary", "binary"),
    Workload("paced-2k", "1 × 10, 2 KB, 1000 fps, binary (10k messages/s out)", 1, 10, 2, 1000, "binary", "binary"),
    Workload("phones", "20 × 2, 40 KB, 15 fps, binary (VGA phones, for sizing)", 20, 2, 40, 15, "binary", "binary"),
)
"""``paced-*`` are issue 12's steady rates, the way phones send: each frame arrives alone in its loop
turn, so batching cannot help and the cost per read and per consumer write shows.  ``phones`` is what
docs/DEPLOYMENT.md's sizing table is computed from: 640×480 JPEGs at 15 fps, two consumers each."""

FULL_TIMING = Timing(warmup=1.0, seconds=5.0, drain=2.0, pause=1.0)
SMOKE_TIMING = Timing(warmup=0.1, seconds=0.5, drain=0.3, pause=0.1)

SMOKE_IDLE_SESSIONS = 50


def smoke(workload: Workload) -> Workload:
    """The workload's shape at tiny sizes: at most 2 producers, 2 consumers each, 4 KB frames."""
    return replace(
        workload,
        producers=min(workload.producers, 2),
        consumers_per_stream=2,
        frame_kb=4,
    )


def by_name(names: list[str]) -> list[Workload]:
    known = {workload.name: workload for workload in WORKLOADS}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"unknown workload {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[name] for name in names]
