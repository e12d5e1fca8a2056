"""Medians, ratios and the printed table.

Each figure is the median over the rounds of one relay, and the ratio is
ours / peer of those medians, as ``shared/bench/compare.sh`` reports them.  On a
shared 2-core machine absolute rates wander from run to run; ratios of the
relay's own costs measured in the same alternating run are the figures to read.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.fanout import FanoutRun
from benchmarks.idle import IdleRun

OURS = "ours"
PEER = "peer"


@dataclass(frozen=True, slots=True)
class Column:
    title: str
    value: Callable[[Any], float | int | None]
    compared: bool = True
    """Whether the ratio ours/peer of this figure means something."""

    @property
    def width(self) -> int:
        return max(len(self.title), 7) + 2


FANOUT_COLUMNS = (
    Column("fps", lambda run: run.delivered_fps),
    Column("MB/s", lambda run: run.delivered_mbps),
    Column("p50 ms", lambda run: run.latency_ms.get("p50")),
    Column("p99 ms", lambda run: run.latency_ms.get("p99")),
    Column("loss %", lambda run: run.lost_pct),
    Column("CPU s/GB", lambda run: run.cpu_s_per_gb),
    Column("CPU µs/frame", lambda run: run.cpu_us_per_frame),
    Column("peak RSS MB", lambda run: run.peak_rss_mb),
    Column("conv/frame", lambda run: run.conversions_per_frame),
    Column("others %", lambda run: run.others_cpu_pct, compared=False),
)

IDLE_COLUMNS = (
    Column("opened", lambda run: run.opened, compared=False),
    Column("failed", lambda run: run.failed, compared=False),
    Column("KB/session", lambda run: run.kb_per_session),
    Column("CPU ms/connect", lambda run: run.cpu_ms_per_connect),
    Column("connect s", lambda run: run.connect_s, compared=False),
    Column("RSS after MB", lambda run: run.rss_after_mb),
)


def median(values: Sequence[float | int | None]) -> float | None:
    present = [value for value in values if value is not None]
    return float(statistics.median(present)) if present else None


def ratio(ours: float | None, peer: float | None) -> float | None:
    if ours is None or peer is None or peer == 0:
        return None
    return ours / peer


def summarise(runs: Sequence[FanoutRun | IdleRun], columns: Sequence[Column]) -> dict[str, dict[str, Any]]:
    """Per relay: the median of every column over its runs, the number of runs and of errors."""
    summary: dict[str, dict[str, Any]] = {}
    for relay in dict.fromkeys(run.relay for run in runs):
        mine = [run for run in runs if run.relay == relay]
        figures: dict[str, Any] = {column.title: median([column.value(run) for run in mine]) for column in columns}
        figures["runs"] = len(mine)
        figures["errors"] = sum(len(run.errors) for run in mine)
        summary[relay] = figures
    if OURS in summary and PEER in summary:
        summary[f"{OURS}/{PEER}"] = {
            column.title: ratio(summary[OURS][column.title], summary[PEER][column.title])
            for column in columns
            if column.compared
        }
    return summary


def _cell(value: float | int | None, width: int, is_ratio: bool) -> str:
    if value is None:
        text = "-"
    elif is_ratio:
        text = f"{value:.2f}×"
    elif isinstance(value, float) and not value.is_integer() and abs(value) < 100:
        text = f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"
    else:
        text = f"{value:.0f}"
    return text.rjust(width)


def table(first_title: str, blocks: dict[str, dict[str, dict[str, Any]]], columns: Sequence[Column]) -> str:
    """One text table: a block of rows (ours, peer, ours/peer) per workload."""
    name_width = max(len(first_title), *(len(name) for name in blocks)) + 2
    header = first_title.ljust(name_width) + "relay".ljust(11)
    header += "".join(column.title.rjust(column.width) for column in columns) + "  runs/errors"
    lines = [header, "-" * len(header)]
    for name, summary in blocks.items():
        for relay, figures in summary.items():
            is_ratio = "/" in relay
            row = name.ljust(name_width) + relay.ljust(11)
            row += "".join(_cell(figures.get(column.title), column.width, is_ratio) for column in columns)
            if not is_ratio:
                row += f"  {figures['runs']}/{figures['errors']}".rjust(13)
            lines.append(row)
    return "\n".join(lines)


def error_lines(runs: Sequence[FanoutRun | IdleRun]) -> list[str]:
    """Each distinct error once, with where it happened."""
    seen: dict[str, None] = {}
    for run in runs:
        where = getattr(run, "workload", "idle")
        for error in run.errors:
            seen.setdefault(f"{where} {run.relay} round {run.round}: {error}", None)
    return list(seen)
