"""``make demo``'s command line: its port, starting fresh, and tokens kept off the processes' arguments."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

PROJECT = Path(__file__).parents[2]


def load_demo() -> ModuleType:
    """``examples/demo.py`` as a module (it is a script, not in a package)."""
    spec = importlib.util.spec_from_file_location("demo", PROJECT / "examples" / "demo.py")
    assert spec is not None
    assert spec.loader is not None
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    return demo


def make_demo(*variables: str) -> str:
    """The command ``make demo VARIABLES`` would run (``make -n`` runs nothing).

    Not as a sub-make of the ``make test`` that may be running these tests: that one's
    flags would make this make print "Entering/Leaving directory" lines."""
    environment = {
        name: value for name, value in os.environ.items() if name not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")
    }
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", "demo", *variables],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=True,
        env=environment,
    )
    return done.stdout.strip().splitlines()[-1]


def test_make_demo_passes_port_and_fresh_to_the_demo() -> None:
    assert make_demo("PORT=5123", "FRESH=1").split()[-3:] == ["--port", "5123", "--fresh"]
    assert make_demo().endswith("examples/demo.py")
    assert "--fresh" not in make_demo("FRESH=0")
    args = load_demo().parse_args(["--port", "5123", "--fresh"])
    assert (args.port, args.fresh) == (5123, True)
    assert load_demo().parse_args([]).fresh is False, "history is kept unless asked"


def test_a_port_in_use_is_refused_naming_the_way_to_choose_another(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert load_demo().main(["--port", str(port)]) == 1
    said = capsys.readouterr().out
    assert f"port {port} is in use" in said
    assert f"make demo PORT={port + 1}" in said


def test_the_phones_and_the_ml_service_get_the_token_in_their_environment_not_their_arguments() -> None:
    demo = load_demo()
    token = "vr_secret-token-value"
    args = demo.parse_args([])
    parts = demo.clients("http://127.0.0.1:5006", token, args, {"PATH": "/usr/bin"})
    assert [name for name, _command, _environment in parts] == ["phones", "ml-service"]
    for _name, command, environment in parts:
        assert not any(token in argument for argument in command), command
        assert "--token" not in command
        assert environment["RELAY_TOKEN"] == token
        assert environment["PATH"] == "/usr/bin"


def test_starting_fresh_removes_the_sqlite_database_its_journal_and_its_analytics_copy(tmp_path: Path) -> None:
    database = tmp_path / "relay.db"
    for path in (database, tmp_path / "relay.db-wal", tmp_path / "kept.txt"):
        path.write_text("x")
    (tmp_path / "relay-analytics" / "date=2026-12-01").mkdir(parents=True)
    removed = load_demo().start_fresh(f"sqlite+aiosqlite:///{database}")
    assert set(removed) == {database, tmp_path / "relay.db-wal", tmp_path / "relay-analytics"}
    assert sorted(path.name for path in tmp_path.iterdir()) == ["kept.txt"]
    assert load_demo().start_fresh(f"sqlite+aiosqlite:///{database}") == [], "nothing there: nothing to remove"
    with pytest.raises(ValueError, match="only a SQLite database"):
        load_demo().start_fresh("postgresql+psycopg://relay@db/relay")
