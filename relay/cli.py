"""The ``relay`` command: ``serve``, ``users add``, ``export``, ``report``, ``analyze``.

Every command reads the same settings (flags over ``RELAY_*`` variables over
defaults), so ``relay users add`` and ``relay export`` work on the database a
running ``relay serve`` uses.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import sys
from collections.abc import Sequence
from pathlib import Path

from relay import __version__, logs
from relay.clock import parse_iso
from relay.config import Settings
from relay.history import export
from relay.store import AlertFilter, Store
from relay.store.models import Alert
from relay.tornado.server import RelayServer, run_event_loop


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except ValueError as error:
        parser.error(str(error))
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="relay", description="Vigil Relay: live camera feeds and ML alerts.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands")

    serve = commands.add_parser("serve", help="run the relay (REST + WebSocket)")
    serve.add_argument("--host", help="interface to listen on (RELAY_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (RELAY_PORT, default 8000)")
    _database_flag(serve)
    serve.add_argument("--broker-url", help="memory:// (default) or redis://host:port/db (RELAY_BROKER_URL)")
    serve.add_argument(
        "--allowed-origin",
        action="append",
        dest="allowed_origins",
        help="a browser origin allowed to open the WebSocket (repeatable; RELAY_ALLOWED_ORIGINS, comma-separated)",
    )
    serve.add_argument("--ping-interval", type=float, help="seconds between WebSocket pings (default 30)")
    serve.add_argument("--max-fps", type=float, help="frames per second per stream and producer (0: no limit)")
    serve.add_argument("--max-alerts-per-second", type=float, help="alerts per second per connection (0: no limit)")
    serve.add_argument("--log-level", default="INFO")
    serve.set_defaults(run=_serve)

    users = commands.add_parser("users", help="manage users").add_subparsers(title="users commands")
    add = users.add_parser("add", help="create a user (or a new token for one) and print the token")
    add.add_argument("name")
    add.add_argument("--password", help="set the user's password (for POST /api/auth/token and the workbench)")
    add.add_argument("--ask-password", action="store_true", help="prompt for the password instead")
    _database_flag(add)
    add.set_defaults(run=_users_add)

    exporter = commands.add_parser("export", help="write alert history to a file")
    exporter.add_argument("--format", choices=export.FORMATS, required=True)
    exporter.add_argument("--out", type=Path, required=True)
    exporter.add_argument("--stream", action="append", default=[], help="only this stream (repeatable)")
    exporter.add_argument("--since", type=parse_iso, help="stored at or after this ISO time")
    exporter.add_argument("--until", type=parse_iso, help="stored before this ISO time")
    exporter.add_argument("--user", help="only this user's streams")
    _database_flag(exporter)
    exporter.set_defaults(run=_export)

    reporter = commands.add_parser("report", help="write a self-contained HTML alert report with plots")
    reporter.add_argument("--out", type=Path, required=True)
    reporter.add_argument("--since", type=parse_iso, help="stored at or after this ISO time")
    reporter.add_argument("--until", type=parse_iso, help="stored before this ISO time")
    reporter.add_argument("--stream", action="append", default=[], help="only this stream (repeatable)")
    reporter.add_argument("--user", help="only this user's streams")
    _database_flag(reporter)
    reporter.set_defaults(run=_report)

    analyze = commands.add_parser(
        "analyze", help="refresh the database's planner statistics (after a bulk import made by other means)"
    )
    _database_flag(analyze)
    analyze.set_defaults(run=_analyze)
    return parser


def _database_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", help="SQLAlchemy URL (RELAY_DATABASE_URL, default sqlite relay.db here)")


def _serve(args: argparse.Namespace) -> int:
    logs.configure(args.log_level)
    settings = Settings.from_env(
        host=args.host,
        port=args.port,
        database_url=args.database_url,
        broker_url=args.broker_url,
        allowed_origins=tuple(args.allowed_origins) if args.allowed_origins else None,
        ping_interval=args.ping_interval,
        max_fps=args.max_fps,
        max_alerts_per_second=args.max_alerts_per_second,
    )
    with contextlib.suppress(KeyboardInterrupt):
        run_event_loop(RelayServer(settings).run_forever())
    return 0


def _users_add(args: argparse.Namespace) -> int:
    password = args.password
    if args.ask_password:
        password = getpass.getpass(f"password for {args.name}: ")
    settings = Settings.from_env(database_url=args.database_url)

    async def add() -> str:
        store = await Store.open(settings.database_url)
        try:
            issued = await store.users.add_or_issue_token(args.name, password)
        finally:
            await store.close()
        what = "created user" if issued.created_user else "new token for user"
        print(f"{what} {issued.username} ({issued.user_id})", file=sys.stderr)
        return issued.token

    print(asyncio.run(add()))
    return 0


def _analyze(args: argparse.Namespace) -> int:
    """``ANALYZE`` now, stale or not: opening the store analyses only what looks stale from its counts."""

    async def analyze() -> None:
        store = await Store.open(Settings.from_env(database_url=args.database_url).database_url)
        try:
            await store.statistics.refresh()
        finally:
            await store.close()

    asyncio.run(analyze())
    print("analysed the alert and stream tables", file=sys.stderr)
    return 0


def _export(args: argparse.Namespace) -> int:
    rows = asyncio.run(_read_alerts(args))
    export.write(rows, args.format, args.out)
    print(f"wrote {len(rows)} alerts to {args.out}", file=sys.stderr)
    return 0


def _report(args: argparse.Namespace) -> int:
    from relay.history import report

    rows = asyncio.run(_read_alerts(args))
    names = asyncio.run(_stream_names(args, {row.stream_id for row in rows}))
    page = report.render(
        export.to_frame(rows), title="Vigil Relay alert report", since=args.since, until=args.until, stream_names=names
    )
    partial = args.out.with_name(args.out.name + ".partial")
    partial.write_text(page, encoding="utf-8")
    partial.replace(args.out)
    print(f"wrote a report of {len(rows)} alerts to {args.out}", file=sys.stderr)
    return 0


async def _stream_names(args: argparse.Namespace, stream_ids: set[str]) -> dict[str, str]:
    store = await Store.open(Settings.from_env(database_url=args.database_url).database_url)
    try:
        return await store.streams.device_names(stream_ids)
    finally:
        await store.close()


async def _read_alerts(args: argparse.Namespace) -> list[Alert]:
    """The alerts that ``--user``, ``--stream``, ``--since`` and ``--until`` select, oldest first."""
    store = await Store.open(Settings.from_env(database_url=args.database_url).database_url)
    try:
        user_id = None
        if args.user:
            user = await store.users.by_name(args.user)
            if user is None:
                raise ValueError(f"no user named {args.user!r}")
            user_id = user.id
        where = AlertFilter(user_id=user_id, stream_ids=args.stream, since=args.since, until=args.until)
        total = await store.alerts.count(where)
        return await export.collect(store.alerts, where, progress=_progress(total))
    finally:
        await store.close()


def _progress(total: int):  # type: ignore[no-untyped-def]
    """A one-line progress counter on stderr when it is a terminal."""

    def show(done: int) -> None:
        if sys.stderr.isatty() and total:
            print(f"\rreading alerts {done}/{total} ({100 * done // total}%)", end="", file=sys.stderr, flush=True)
            if done >= total:
                print(file=sys.stderr)

    return show
