"""The three-node sizing check (``python -m benchmarks.nodes --smoke``) keeps its books: an accounting test, not speed.

Real ``relay serve`` nodes on a PostgreSQL schema of the run's own and a real
Redis (a ``redis-server`` of the run's own where one is installed, so that its
CPU is measured; else ``RELAY_TEST_REDIS_URL``).  Whatever the machine's load,
every frame a phone sent must be delivered to both its consumers or counted
lost, none twice, the per-node figures must add up to the whole, and every
figure must be a finite number: a benchmark whose books do not balance would
put wrong figures in docs/DEPLOYMENT.md's sizing table.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support import service_url

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

REPO = Path(__file__).resolve().parents[2]


def numbers(value: Any) -> list[float]:
    """Every number in a JSON value (booleans apart)."""
    if isinstance(value, dict):
        return [number for item in value.values() for number in numbers(item)]
    if isinstance(value, list):
        return [number for item in value for number in numbers(item)]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [float(value)]
    return []


@pytest.mark.timeout(240)
def test_every_frame_is_delivered_to_both_consumers_or_counted_lost(tmp_path: Path) -> None:
    environment = {**os.environ, "RELAY_BENCH_POSTGRES_URL": service_url("RELAY_TEST_POSTGRES_URL", "PostgreSQL")}
    command = [sys.executable, "-m", "benchmarks.nodes", "--smoke", "--json", str(tmp_path / "nodes.json")]
    if shutil.which("redis-server") is None:
        command += ["--redis-url", service_url("RELAY_TEST_REDIS_URL", "Redis (or redis-server on the PATH)")]
    completed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=220, env=environment)
    output = completed.stdout[-4000:] + completed.stderr[-4000:]
    assert completed.returncode == 0, output
    report = orjson.loads((tmp_path / "nodes.json").read_bytes())
    assert report["errors"] == [], output
    assert [phase["name"] for phase in report["phases"]] == ["cross", "local", "alone"]
    for phase in report["phases"]:
        name, delivery = phase["name"], phase["delivery"]
        assert all(math.isfinite(number) for number in numbers(phase)), f"{name}: {output}"
        assert delivery["frames_sent"] > 0, f"{name}: {output}"
        assert delivery["frames_expected"] == 2 * delivery["frames_sent"], f"{name}: {output}"
        # lost is counted per consumer as sent - received, never below 0: balanced only if none got a frame twice
        assert delivery["frames_delivered"] + delivery["lost_total"] == delivery["frames_expected"], f"{name}: {output}"
        assert delivery["out_of_order"] == 0, f"{name}: {output}"
        by_node = sum(node["frames_delivered"] for node in phase["nodes"])
        assert by_node == delivery["window_frames"] > 0, f"{name}: {output}"
    cross = report["phases"][0]
    roles = {node["node"]: node["role"] for node in cross["nodes"]}
    assert roles == {"A": "phones", "B": "consumers", "C": "consumers"}, output
    assert all(node["frames_delivered"] > 0 for node in cross["nodes"] if node["role"] == "consumers"), output
    # every frame in crossed Redis: in at least once, out to at least the two consumers' nodes
    assert cross["redis"]["mb_out"] >= 2 * cross["redis"]["mb_in"] > 0, output
    assert "result: ok" in completed.stdout
