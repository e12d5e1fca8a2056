"""The benchmark suite still runs: ``python -m benchmarks --smoke`` against a relay it starts.

No speed is asserted (a shared CI machine gives no stable figures); what is
checked is that every workload ran without error and produced every figure, so
the suite cannot rot unnoticed.  The reference Node peer is left out here: CI
does not depend on Node.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from benchmarks.workloads import WORKLOADS

REPO = Path(__file__).resolve().parents[2]
FIGURES = ("fps", "MB/s", "p50 ms", "p99 ms", "loss %", "CPU s/GB", "CPU µs/frame", "peak RSS MB", "conv/frame")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    out = tmp_path_factory.mktemp("bench") / "smoke.json"
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--no-peer", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed, orjson.loads(out.read_bytes())


@pytest.mark.timeout(180)
def test_every_workload_reports_every_figure(smoke: tuple[subprocess.CompletedProcess[str], dict[str, Any]]) -> None:
    completed, results = smoke
    summary = results["fanout"]["summary"]
    assert list(summary) == [workload.name for workload in WORKLOADS]
    for name, relays in summary.items():
        ours = relays["ours"]
        assert (ours["runs"], ours["errors"]) == (1, 0), name
        for figure in FIGURES:
            assert isinstance(ours[figure], float), (name, figure)
            assert ours[figure] >= 0, (name, figure)
        assert name in completed.stdout
    for run in results["fanout"]["runs"]:
        assert run["errors"] == []
        assert run["frames_delivered"] > 0
        assert run["frames_sent"] > 0
        assert run["latency_ms"]["n"] > 0


@pytest.mark.timeout(180)
def test_mixed_forms_convert_each_frame_once(smoke: tuple[subprocess.CompletedProcess[str], dict[str, Any]]) -> None:
    """Counted by the relay's GET /api/metrics: at most one conversion per frame with JSON and binary consumers.

    Fewer when every JSON consumer dropped a frame before it was written: its JSON form is then never built.
    """
    _, results = smoke
    summary = results["fanout"]["summary"]
    assert 0 < summary["mixed"]["ours"]["conv/frame"] <= 1.0
    assert summary["w1"]["ours"]["conv/frame"] == 0.0
    assert summary["w2-json"]["ours"]["conv/frame"] == 0.0


@pytest.mark.timeout(180)
def test_idle_sessions_are_all_opened_and_measured(
    smoke: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
) -> None:
    completed, results = smoke
    (run,) = results["idle"]["runs"]
    assert run["errors"] == []
    assert run["failed"] == 0
    assert run["opened"] == run["sessions"] > 0
    assert isinstance(run["cpu_ms_per_connect"], float)
    assert run["rss_after_mb"] > 0
    assert "KB/session" in completed.stdout
    meta = results["meta"]
    assert meta["smoke"] is True
    assert meta["peer"] is None
    assert meta["command"].startswith("python -m benchmarks")


@pytest.mark.parametrize("worker", ["benchmarks.idle", "benchmarks.loadgen"])
def test_a_worker_run_by_hand_says_what_to_run_instead_of_a_traceback(worker: str) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", worker, "--help"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 1
    assert "Traceback" not in completed.stderr
    assert "is a worker that `python -m benchmarks` starts" in completed.stderr
