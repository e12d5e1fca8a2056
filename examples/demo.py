"""``make demo``: the whole loop on this machine, from one command.

1. The relay's default database, ``relay.db`` in the project folder (or ``RELAY_DATABASE_URL``):
   the one ``relay serve``, ``panel serve workbench`` and ``relay export``/``relay report``
   read when run from here, so the demo's history is there to export, and kept across runs;
   ``--fresh`` (``make demo FRESH=1``) removes it first.
2. The user ``demo`` with password ``demo``, and a token for the phones and the ML service
   (in their environment: command lines are anyone's to read with ``ps``).
3. ``panel serve workbench``: the workbench and the relay in one process, on port 5006
   (``--port``, ``make demo PORT=…``).
4. Four simulated phones streaming real footage (``examples/mobile/simulate.py``).
5. The OpenCV ML service (``examples/ml-service/client.py``), whose alerts reach the workbench.

Then it prints the address and the login, and waits.  Ctrl-C stops everything;
so does any part stopping on its own (its log's end is printed).  Each part logs
to a file in ``.demo/``, which also keeps the workbench's cookie secret.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from sqlalchemy import make_url

from relay.config import Settings

PROJECT = Path(__file__).resolve().parents[1]
DEMO = PROJECT / ".demo"
SIMULATOR = PROJECT / "examples" / "mobile" / "simulate.py"
ML_SERVICE = PROJECT / "examples" / "ml-service" / "client.py"
USER = PASSWORD = "demo"
STARTUP_SECONDS = 90


class Part:
    """One process of the demo, logging to ``.demo/NAME.log``."""

    def __init__(self, name: str, command: list[str], environment: dict[str, str]) -> None:
        self.name = name
        self.log_path = DEMO / f"{name}.log"
        self._log: IO[bytes] = self.log_path.open("wb")
        # A session of its own: Ctrl-C reaches only this script, which stops the parts in order.
        self.process = subprocess.Popen(
            command, cwd=PROJECT, env=environment, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def stopped(self) -> bool:
        return self.process.poll() is not None

    def stop(self) -> None:
        if not self.stopped():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The demo's options; ``make demo PORT=… FRESH=1`` passes ``--port`` and ``--fresh``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=5006, help="the workbench's port (default 5006; make demo PORT=…)")
    parser.add_argument(
        "--fresh", action="store_true", help="start from an empty database (make demo FRESH=1); else history is kept"
    )
    parser.add_argument("--streams", type=int, default=4, help="simulated phones (default 4)")
    parser.add_argument("--fps", type=float, default=10, help="frames per second of each phone (default 10)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    missing = [str(path.relative_to(PROJECT)) for path in (SIMULATOR, ML_SERVICE) if not path.exists()]
    if missing:
        print(f"demo: {' and '.join(missing)} missing (the phone simulator and ML service of the clients issue)")
        return 1
    if not port_is_free(args.port):
        print(
            f"demo: port {args.port} is in use (another workbench?); stop it, or choose another port: "
            f"make demo PORT={args.port + 1} (python examples/demo.py --port {args.port + 1})"
        )
        return 1

    stop_on_signals()
    DEMO.mkdir(exist_ok=True)
    environment = {
        **os.environ,
        "RELAY_DATABASE_URL": database_url(),
        "WORKBENCH_SECRET_FILE": str(DEMO / "cookie-secret"),
        "PYTHONUNBUFFERED": "1",
    }
    environment.pop("RELAY_TOKEN", None)  # only the phones and the ML service get one, the demo's
    if args.fresh:
        try:
            removed = start_fresh(environment["RELAY_DATABASE_URL"])
        except ValueError as error:
            print(f"demo: {error}")
            return 1
        print(f"demo: starting fresh: removed {', '.join(map(str, removed)) or 'nothing (there was no database)'}")
    token = create_user(environment)
    print(f"demo: user {USER!r}, password {PASSWORD!r}; database {environment['RELAY_DATABASE_URL']}")

    url = f"http://127.0.0.1:{args.port}"
    parts = [Part("workbench", [bin_path("panel"), "serve", "workbench", "--port", str(args.port)], environment)]
    try:
        if not wait_until_healthy(url, parts[0]):
            return 1
        for name, command, part_environment in clients(url, token, args, environment):
            parts.append(Part(name, command, part_environment))
        print(
            f"\ndemo: open http://localhost:{args.port}/workbench and log in as {USER} / {PASSWORD}\n"
            f"demo: {args.streams} phones stream to it and the ML service sends alerts; logs in {DEMO}/\n"
            "demo: Ctrl-C stops everything (the history stays; make demo FRESH=1 starts without it)\n",
            flush=True,
        )
        return watch(parts)
    except KeyboardInterrupt:
        print("\ndemo: stopping")
        return 0
    finally:
        for part in reversed(parts):
            part.stop()


def clients(
    url: str, token: str, args: argparse.Namespace, environment: dict[str, str]
) -> list[tuple[str, list[str], dict[str, str]]]:
    """The phones' and the ML service's names, command lines and environments.

    The token travels in ``RELAY_TOKEN``, never on the command line: any user of
    the machine can read every process's arguments (``ps``), only its owner its environment.
    """
    with_token = {**environment, "RELAY_TOKEN": token}
    phones = [
        sys.executable, str(SIMULATOR), "--url", url,
        "--streams", str(args.streams), "--sample", "all", "--fps", f"{args.fps:g}", "--width", "640",
    ]  # fmt: skip
    ml_service = [sys.executable, str(ML_SERVICE), "--url", url]
    return [("phones", phones, with_token), ("ml-service", ml_service, with_token)]


def start_fresh(url: str) -> list[Path]:
    """Remove the demo's SQLite database (with its journal files) and its analytics copy; what was removed.

    Only a SQLite file is the demo's to remove: another database (``RELAY_DATABASE_URL``
    naming PostgreSQL) is the operator's, and ValueError says so.
    """
    settings = Settings.from_env({"RELAY_DATABASE_URL": url})
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        raise ValueError(f"--fresh removes only a SQLite database file, not {parsed.render_as_string()}")
    database = PROJECT / Path(parsed.database).expanduser()  # a relative path is the parts' (the project folder)
    analytics = PROJECT / settings.analytics_folder()
    removed = []
    for path in (database, database.with_name(database.name + "-wal"), database.with_name(database.name + "-shm")):
        if path.exists():
            path.unlink()
            removed.append(path)
    if analytics.exists():
        shutil.rmtree(analytics)
        removed.append(analytics)
    return removed


def stop_on_signals() -> None:
    """Ctrl-C and SIGTERM both stop the demo and everything it started.

    The parts run in sessions of their own, so a signal to the demo alone would
    otherwise leave them running; and a shell that starts the demo in the
    background makes it ignore Ctrl-C unless it asks for it back.
    """

    def interrupt(_signal: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)


def database_url() -> str:
    """The relay's own default (``relay.db`` in the working folder, which is the project folder for the
    parts), unless ``RELAY_DATABASE_URL`` names another: the database every ``relay`` command run here reads."""
    return Settings.from_env().database_url


def create_user(environment: dict[str, str]) -> str:
    """``relay users add demo --password demo``; its token (the last line it prints)."""
    done = subprocess.run(
        [bin_path("relay"), "users", "add", USER, "--password", PASSWORD],
        cwd=PROJECT,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def wait_until_healthy(url: str, workbench: Part) -> bool:
    """Wait for the relay inside the workbench to answer, with a progress line; False if it never does."""
    print("demo: starting the workbench and its relay ", end="", flush=True)
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if workbench.stopped():
            print(f"\ndemo: the workbench stopped:\n{workbench.log_tail()}")
            return False
        try:
            with urllib.request.urlopen(url + "/api/health", timeout=2) as answer:
                if answer.status == 200:
                    print(" ready")
                    return True
        except (urllib.error.URLError, ConnectionError):
            pass
        print(".", end="", flush=True)
        time.sleep(0.5)
    print(f"\ndemo: the workbench did not answer within {STARTUP_SECONDS} s:\n{workbench.log_tail()}")
    return False


def watch(parts: list[Part]) -> int:
    """Wait until Ctrl-C (0) or until a part stops on its own (1)."""
    while True:
        for part in parts:
            if part.stopped():
                print(f"demo: {part.name} stopped (exit {part.process.returncode}):\n{part.log_tail()}")
                return 1
        time.sleep(0.5)


def port_is_free(port: int) -> bool:
    """Whether a server could listen on ``port`` (as Tornado does, ignoring connections in TIME_WAIT)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("", port))
        except OSError:
            return False
    return True


def bin_path(name: str) -> str:
    """A command installed beside this Python (the project's virtual environment)."""
    return str(Path(sys.executable).with_name(name))


if __name__ == "__main__":
    raise SystemExit(main())
