"""Counters of what this relay process has done, for ``GET /api/metrics`` and the benchmarks.

Plain integers on one slotted object, bumped on the frame path at the cost of
an attribute increment; nothing is timed, logged or stored per frame.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(slots=True)
class Counters:
    frames_received: int = 0
    frames_delivered: int = 0
    frames_dropped: int = 0
    alerts_stored: int = 0
    alerts_replayed: int = 0
    alerts_gap_filled: int = 0
    alerts_gap_unfilled: int = 0
    broker_publish_failures: int = 0
    broker_frames_lost: int = 0
    connections_opened: int = 0
    started: float = field(default_factory=time.monotonic)


COUNTERS = Counters()
"""This process's counters (one relay node per process)."""
