"""One default database: every ``relay`` command and the demo read ``relay.db`` in the folder they run in.

The demo runs its parts in the project folder with the relay's default, so ``relay
export`` and ``relay report`` run from there read the demo's history; and a command
that only reads refuses a database that is not there rather than making an empty one.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from relay.store.database import DEFAULT_DATABASE_URL

PROJECT = Path(__file__).parents[2]


def relay_command(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``relay ARGS`` run in ``folder``, with no ``RELAY_DATABASE_URL`` of the caller's."""
    environment = {name: value for name, value in os.environ.items() if name != "RELAY_DATABASE_URL"}
    return subprocess.run(
        [sys.executable, "-m", "relay", *args], cwd=folder, env=environment, capture_output=True, text=True, timeout=120
    )


def test_users_export_and_report_agree_on_relay_db_in_the_working_folder(tmp_path: Path) -> None:
    added = relay_command(tmp_path, "users", "add", "analyst", "--password", "pw")
    assert added.returncode == 0, added.stderr
    assert (tmp_path / "relay.db").exists()
    exported = relay_command(tmp_path, "export", "--format", "json", "--out", "alerts.json")
    assert exported.returncode == 0, exported.stderr
    assert "wrote 0 alerts" in exported.stderr
    reported = relay_command(tmp_path, "report", "--out", "report.html")
    assert reported.returncode == 0, reported.stderr
    assert (tmp_path / "report.html").exists()


@pytest.mark.parametrize(
    "command", [("report", "--out", "report.html"), ("analyze",), ("export", "--format", "csv", "--out", "a.csv")]
)
def test_a_command_that_reads_refuses_a_folder_without_a_database(tmp_path: Path, command: tuple[str, ...]) -> None:
    done = relay_command(tmp_path, *command)
    assert done.returncode == 2
    assert f"there is no database at {tmp_path / 'relay.db'}" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "relay.db").exists(), "no empty database made"


def test_the_demo_uses_the_default_database_in_the_project_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RELAY_DATABASE_URL", raising=False)
    spec = importlib.util.spec_from_file_location("demo", PROJECT / "examples" / "demo.py")
    assert spec is not None
    assert spec.loader is not None
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    assert demo.database_url() == DEFAULT_DATABASE_URL == "sqlite+aiosqlite:///relay.db"
    assert demo.PROJECT == PROJECT, "the demo's parts run in the project folder, where relay.db is"
    monkeypatch.setenv("RELAY_DATABASE_URL", "postgresql+psycopg://relay@db/relay")
    assert demo.database_url() == "postgresql+psycopg://relay@db/relay"
