"""The history REST benchmark still runs: ``python -m benchmarks.history_rest --smoke`` on both databases.

No time is asserted (a shared CI machine gives no stable figures).  What is
checked is that every shape was measured and that every answer the relay gave
was the alerts the benchmark generated for it: the benchmark checks each page
against its own rows and reports a mismatch as an error.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.support import service_url

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_every_shape_is_measured_and_every_answer_is_right(database: str, tmp_path: Path) -> None:
    environment = dict(os.environ)
    if database == "postgresql":
        environment["RELAY_BENCH_POSTGRES_URL"] = service_url("RELAY_TEST_POSTGRES_URL", "PostgreSQL")
    out = tmp_path / "history.json"
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.history_rest", "--smoke", "--database", database, "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=200,
        env=environment,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    results = orjson.loads(out.read_bytes())
    assert (results["database"], results["alerts"]) == (database, 20_000)
    shapes = {result["shape"] for result in results["results"]}
    assert {"all", "objectType=car", "q=xylophone (miss)", "q=at (2 letters)", "since/until (1 day)"} <= shapes
    for result in results["results"]:
        assert result["errors"] == [], result
        assert len(result["times_ms"]) == 3
        assert all(time > 0 for time in result["times_ms"])
    assert any(result["page"] > 1 for result in results["results"]), "deep pages are measured too"
    assert "p50 ms" in completed.stdout
