"""The soak's short run (``python -m benchmarks.soak --short``): nothing confirmed lost or doubled across faults.

Two ``relay serve`` nodes on a PostgreSQL schema of the run's own and a
``redis-server`` of its own, a dozen clients of the project's client library,
random disconnects, a stalling consumer, one node killed with SIGKILL and
restarted, one Redis restart: then every check of the account must be 0.  The
run is seeded and waits for events under generous guards, so a loaded machine
makes it slower, not wrong; only its own checks are asserted, no figure of speed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.support import REQUIRE_SERVICES, service_url

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
def test_the_short_soak_loses_and_doubles_nothing(tmp_path: Path) -> None:
    environment = {**os.environ, "RELAY_BENCH_POSTGRES_URL": service_url("RELAY_TEST_POSTGRES_URL", "PostgreSQL")}
    if shutil.which("redis-server") is None:
        message = "redis-server is not installed: the soak restarts a Redis of its own"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    out = tmp_path / "soak.json"
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.soak", "--short", "--seed", "1", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=280,
        env=environment,
    )
    output = completed.stdout[-4000:] + completed.stderr[-4000:]
    assert completed.returncode == 0, output
    report = orjson.loads(out.read_bytes())
    assert report["failures"] == [], output
    alerts = report["alerts"]
    assert alerts["confirmed"] > 0, output
    assert (alerts["lost"], alerts["doubled_in_database"], alerts["confirmed_with_two_ids"]) == (0, 0, 0), output
    assert alerts["confirmed"] == alerts["in_database"] == alerts["stored_once"], output
    for kind, group in report["consumers"].items():
        assert (group["missing"], group["doubles"]) == (0, 0), f"{kind}: {output}"
    faults = report["faults"]
    assert faults["node_back_after"] is not None, "the node was killed and came back"
    assert faults["redis_back_after"] is not None, "Redis was killed and came back"
    assert faults["disconnects"] > 0, output
    assert all(node["connections_at_end"] == 0 for node in report["nodes"]), output
    assert "result: ok" in completed.stdout
