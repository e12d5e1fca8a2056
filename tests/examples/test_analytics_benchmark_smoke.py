"""The analytics scale benchmark still runs: ``python -m benchmarks.analytics --smoke`` (SQLite, 20,000 alerts).

No time is asserted (a shared CI machine gives no stable figures).  What is
checked is that every step was measured and that every answer was right: the
benchmark counts the rows of each export and of the partitioned folder, and
compares each DuckDB query with the pandas reference, and reports a mismatch
as an error (exit status 1).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from relay.history.analytics import QUERIES

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
def test_every_step_is_measured_and_every_answer_is_right(tmp_path: Path) -> None:
    out = tmp_path / "analytics.json"
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.analytics", "--smoke", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    results = orjson.loads(out.read_bytes())
    assert results["errors"] == []
    raw = results["raw"]
    assert set(raw["exports"]["big"]) == {"parquet", "csv", "json"}
    for figures in raw["exports"]["big"].values():
        assert figures["rows"] == raw["seed"]["alerts"]
        assert figures["peak_mb"] > 0
    assert 0 < raw["exports"]["big"]["parquet"]["largest_row_group"] <= 128 * 1024
    assert raw["partitioned"]["full"]["days"] == 30
    assert raw["partitioned"]["incremental"]["added"] > 0
    queries = raw["queries"]["duckdb"]["queries"]
    assert set(queries) == set(QUERIES)
    assert all(query["equal_to_reference"] for query in queries.values())
    assert set(raw["queries"]["pandas"]["queries"]) == set(QUERIES)
    for format in ("parquet", "csv", "json"):
        assert raw["http"][format]["first_byte_seconds"] > 0
        assert raw["http"][format]["neighbour_ms"], "the neighbour read pages during the export"
    assert raw["report"]["no copy yet"]["seconds"] > 0
    assert "met?" in completed.stdout
