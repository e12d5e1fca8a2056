"""The ``relay`` command: ``serve``, ``users``, ``tokens``, ``export``, ``report``, ``prune``, ``analyze``.

Every command reads the same settings (flags over ``RELAY_*`` variables over
defaults), so ``relay users add`` and ``relay export`` work on the database a
running ``relay serve`` uses.  Commands that manage users and tokens refuse a
SQLite file that does not exist rather than create an empty database, and
never print a whole token except the one ``users add`` issues.

A token revoked here (``tokens revoke``, ``revoke-all``, ``users remove``) is
deleted in the database; running relays cannot be told, and find out by their
token watch within about a second (``RELAY_TOKEN_CHECK_INTERVAL``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import NoReturn

from sqlalchemy import Engine, make_url
from tqdm import tqdm

from relay import __version__, logs
from relay.clock import iso, parse_iso, utcnow
from relay.config import Settings
from relay.history.formats import FORMATS
from relay.identity.credentials import TOKEN_PREFIX
from relay.store import AlertFilter, Pruned, Removed, Store, TokenSummary, UserSummary
from relay.store.database import create_sync_engine
from relay.store.models import User


class CommandFailed(Exception):
    """What the user asked cannot be done (no such user, an ambiguous prefix): said on stderr, exit status 1."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except CommandFailed as error:
        print(f"relay: {error}", file=sys.stderr)
        return 1
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
    listing = users.add_parser("list", help="every user: name, id, created, number of tokens and streams")
    _database_flag(listing)
    listing.set_defaults(run=_users_list)
    remove = users.add_parser("remove", help="delete a user with their streams, alerts, snapshots and tokens")
    remove.add_argument("name")
    _database_flag(remove)
    remove.set_defaults(run=_users_remove)
    passwd = users.add_parser("passwd", help="set a user's password (prompted for unless --password)")
    passwd.add_argument("name")
    passwd.add_argument("--password", help="the new password (else it is asked for, twice, without echo)")
    _database_flag(passwd)
    passwd.set_defaults(run=_users_passwd)

    tokens = commands.add_parser("tokens", help="list and revoke bearer tokens").add_subparsers(title="tokens commands")
    token_list = tokens.add_parser("list", help="a user's tokens: prefix, created, last used (never the token)")
    token_list.add_argument("name")
    _database_flag(token_list)
    token_list.set_defaults(run=_tokens_list)
    revoke = tokens.add_parser("revoke", help="revoke the one token whose prefix this is")
    revoke.add_argument("prefix", help="the prefix tokens list shows (vr_ optional, at least 4 characters)")
    _database_flag(revoke)
    revoke.set_defaults(run=_tokens_revoke)
    revoke_all = tokens.add_parser("revoke-all", help="revoke every token of a user")
    revoke_all.add_argument("name")
    _database_flag(revoke_all)
    revoke_all.set_defaults(run=_tokens_revoke_all)

    exporter = commands.add_parser("export", help="write alert history to a file, or a folder partitioned by day")
    exporter.add_argument("--format", choices=FORMATS, help="the file's format (with --out)")
    exporter.add_argument("--out", type=Path, help="the file to write")
    exporter.add_argument(
        "--partitioned",
        type=Path,
        metavar="DIR",
        help="instead of a file: Parquet in DIR/date=YYYY-MM-DD/, brought up to date incrementally",
    )
    exporter.add_argument(
        "--snapshots",
        type=Path,
        metavar="DIR",
        help="also (or only) the alerts' snapshots, as DIR/ALERT_ID.jpg; files already there are kept",
    )
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

    prune = commands.add_parser(
        "prune", help="delete alerts (and their snapshots) older than DAYS now, except those marked keep"
    )
    prune.add_argument("--older-than", type=_positive_days, required=True, metavar="DAYS")
    _database_flag(prune)
    prune.set_defaults(run=_prune)

    analyze = commands.add_parser(
        "analyze", help="refresh the database's planner statistics (after a bulk import made by other means)"
    )
    _database_flag(analyze)
    analyze.set_defaults(run=_analyze)
    return parser


def _database_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", help="SQLAlchemy URL (RELAY_DATABASE_URL, default sqlite relay.db here)")


def _serve(args: argparse.Namespace) -> int:
    from relay.tornado.server import RelayServer, run_event_loop  # the server's imports only for serving

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


MIN_PREFIX_CHARS = 4


def _positive_days(text: str) -> float:
    try:
        days = float(text)
    except ValueError:
        days = -1.0
    if not 0 < days < 1e6:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days above 0")
    return days


def _prune(args: argparse.Namespace) -> int:
    """The retention's deletes now, in batches, and those days of the analytics copy the settings name written again.

    That copy is the running relays' own unless they were given another ``RELAY_ANALYTICS_DIR``.
    """
    settings = Settings.from_env(database_url=args.database_url)

    async def prune() -> Pruned:
        async with _opened(args) as store:
            return await store.jobs.prune(utcnow() - timedelta(days=args.older_than))

    pruned = asyncio.run(prune())
    _forget_in_analytics_copy(settings, pruned.days)
    print(f"deleted {pruned.deleted} alerts older than {args.older_than:g} days (those marked keep stay)")
    return 0


def _users_list(args: argparse.Namespace) -> int:
    async def summaries() -> list[UserSummary]:
        async with _opened(args) as store:
            return await store.users.summaries()

    rows = [
        (user.username, user.id, iso(user.created_at) or "-", str(user.tokens), str(user.streams))
        for user in asyncio.run(summaries())
    ]
    _print_table(("NAME", "ID", "CREATED", "TOKENS", "STREAMS"), rows)
    return 0


def _users_remove(args: argparse.Namespace) -> int:
    settings = Settings.from_env(database_url=args.database_url)

    async def remove() -> Removed:
        async with _opened(args) as store:
            user = await _user_named(store, args.name)
            return await store.users.remove(user.id)

    removed = asyncio.run(remove())
    _forget_in_analytics_copy(settings, removed.days)
    print(
        f"removed user {args.name}: {len(removed.token_hashes)} tokens, {removed.streams} streams, "
        f"{removed.alerts} alerts",
        file=sys.stderr,
    )
    return 0


def _users_passwd(args: argparse.Namespace) -> int:
    password = args.password
    if password is None:
        password = getpass.getpass(f"new password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            raise CommandFailed("the passwords differ; nothing changed")
    if not password:
        raise CommandFailed("an empty password is not a password; nothing changed")

    async def passwd() -> None:
        async with _opened(args) as store:
            user = await _user_named(store, args.name)
            await store.users.set_password(user.id, password)

    asyncio.run(passwd())
    print(f"password of {args.name} changed (their tokens still work: relay tokens revoke-all)", file=sys.stderr)
    return 0


def _tokens_list(args: argparse.Namespace) -> int:
    async def listing() -> list[TokenSummary]:
        async with _opened(args) as store:
            return await store.users.tokens_of((await _user_named(store, args.name)).id)

    rows = [
        (
            f"{TOKEN_PREFIX}{token.prefix}…" if token.prefix else "(older than 0006)",
            iso(token.created_at) or "-",
            iso(token.last_used_at) or "never",
        )
        for token in asyncio.run(listing())
    ]
    _print_table(("TOKEN", "CREATED", "LAST USED"), rows)
    return 0


def _tokens_revoke(args: argparse.Namespace) -> int:
    prefix: str = args.prefix
    if len(prefix.removeprefix(TOKEN_PREFIX)) < MIN_PREFIX_CHARS:
        raise CommandFailed(f"give at least {MIN_PREFIX_CHARS} characters of the prefix (relay tokens list NAME)")

    async def revoke() -> str:
        async with _opened(args) as store:
            matches = await store.users.tokens_with_prefix(prefix)
            if len(matches) != 1:
                found = "no token" if not matches else f"{len(matches)} tokens"
                raise CommandFailed(f"{found} match {prefix!r}; nothing revoked (give more characters)")
            await store.users.revoke([matches[0].token_hash])
            return f"{TOKEN_PREFIX}{matches[0].prefix}…" if matches[0].prefix else "the token"

    print(f"revoked {asyncio.run(revoke())}; running relays stop taking it within about a second", file=sys.stderr)
    return 0


def _tokens_revoke_all(args: argparse.Namespace) -> int:
    async def revoke_all() -> int:
        async with _opened(args) as store:
            return len(await store.users.revoke_all((await _user_named(store, args.name)).id))

    count = asyncio.run(revoke_all())
    print(
        f"revoked {count} tokens of {args.name}; running relays stop taking them within about a second", file=sys.stderr
    )
    return 0


@contextlib.asynccontextmanager
async def _opened(args: argparse.Namespace) -> AsyncIterator[Store]:
    """The store the settings name, migrated; a SQLite file that does not exist is an error, not a new database."""
    url = Settings.from_env(database_url=args.database_url).database_url
    missing = _missing_sqlite_file(url)
    if missing is not None:
        raise CommandFailed(f"there is no database at {missing} (give --database-url or set RELAY_DATABASE_URL)")
    store = await Store.open(url)
    try:
        yield store
    finally:
        await store.close()


async def _user_named(store: Store, name: str) -> User:
    user = await store.users.by_name(name)
    if user is None:
        raise CommandFailed(f"no user named {name!r}")
    return user


def _forget_in_analytics_copy(settings: Settings, days: Sequence[date]) -> None:
    """Write the days of deleted alerts again in the analytics copy beside the database, if there is one."""
    from relay.history import partitioned
    from relay.history.service import EVERYONE

    folder = settings.analytics_folder()
    if not days or not (folder / partitioned.STATE_FILE).exists():
        return
    engine = create_sync_engine(settings.database_url)
    try:
        partitioned.rewrite_days(engine, folder, EVERYONE, days)
    finally:
        engine.dispose()
    print(f"wrote {len(days)} days of the analytics copy {folder} again", file=sys.stderr)


def _print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Columns padded to their widest cell, for people; tab-free so ``awk`` splits them too."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=False)]
    for row in (header, *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _analyze(args: argparse.Namespace) -> int:
    """``ANALYZE`` now, stale or not: opening the store analyses only what looks stale from its counts."""

    async def analyze() -> None:
        store = await Store.open(_existing_database_url(args))
        try:
            await store.statistics.refresh()
        finally:
            await store.close()

    asyncio.run(analyze())
    print("analysed the alert and stream tables", file=sys.stderr)
    return 0


def _export(args: argparse.Namespace) -> int:
    if args.snapshots is not None:
        _check_writable(args.snapshots, folder=True)
    if args.partitioned is not None:
        if args.out is not None or args.format is not None:
            raise ValueError("--partitioned writes a folder of Parquet: give it without --out and --format")
        _export_partitioned(args)
    elif args.out is not None or args.format is not None or args.snapshots is None:
        if args.out is None or args.format is None:
            raise ValueError("give --format and --out (a file), --partitioned DIR (a folder), or --snapshots DIR")
        _export_file(args)
    if args.snapshots is not None:
        _export_snapshots(args)
    return 0


def _export_snapshots(args: argparse.Namespace) -> None:
    from relay.history import snapshots

    folder: Path = args.snapshots
    engine, where = asyncio.run(_history_source(args))
    try:
        with _progress_bar(snapshots.count(engine, where), f"snapshots to {folder}") as bar:
            done = snapshots.write(engine, where, folder, progress=bar.update)
    finally:
        engine.dispose()
    kept = f" ({done.already_there} already there)" if done.already_there else ""
    print(f"wrote {done.written} snapshots to {folder}{kept}", file=sys.stderr)


def _export_file(args: argparse.Namespace) -> None:
    from relay.history import export

    _check_writable(args.out)
    engine, where = asyncio.run(_history_source(args))
    try:
        total = export.count(engine, where)
        with _progress_bar(total, f"exporting to {args.out}") as bar:
            export.write(engine, where, args.format, args.out, progress=bar.update)
    finally:
        engine.dispose()
    print(f"wrote {total} alerts to {args.out}", file=sys.stderr)


def _export_partitioned(args: argparse.Namespace) -> None:
    from relay.history import partitioned

    folder: Path = args.partitioned
    _check_writable(folder, folder=True)
    engine, where = asyncio.run(_history_source(args))
    try:
        total = partitioned.count_pending(engine, folder, where)
        with _progress_bar(total, f"exporting to {folder}") as bar:
            done = partitioned.refresh(engine, folder, where, progress=bar.update)
    finally:
        engine.dispose()
    days = f"{len(done.days_written)} days" if len(done.days_written) != 1 else "1 day"
    print(f"wrote {done.alerts_written} alerts on {days} to {folder}", file=sys.stderr)


def _report(args: argparse.Namespace) -> int:
    from relay.history import partitioned, report
    from relay.history.analytics import Analytics
    from relay.history.service import EVERYONE

    _check_writable(args.out)
    engine, where = asyncio.run(_history_source(args))
    settings = Settings.from_env(database_url=args.database_url)
    folder = settings.analytics_folder()
    try:
        partitioned.refresh(engine, folder, EVERYONE)  # the relay's own analytics copy, brought up to date
    finally:
        engine.dispose()
    analytics = Analytics(folder)
    try:
        answers = report.gather(analytics.run, where)
    finally:
        analytics.close()
    page = report.render(answers, title="Vigil Relay alert report", since=args.since, until=args.until)
    partial = args.out.with_name(args.out.name + ".partial")
    partial.write_text(page, encoding="utf-8")
    partial.replace(args.out)
    alerts = answers["totals"].rows[0][0]
    print(f"wrote a report of {alerts} alerts to {args.out} (analytics copy: {folder})", file=sys.stderr)
    return 0


async def _history_source(args: argparse.Namespace) -> tuple[Engine, AlertFilter]:
    """A blocking engine on the database the settings name, and the filter ``--user``, ``--stream``,
    ``--since`` and ``--until`` make.  A database that does not exist is an error, not a new empty one."""
    url = _existing_database_url(args)
    store = await Store.open(url)  # brings an older database to the schema the export reads
    try:
        user_id = None
        if args.user:
            user = await store.users.by_name(args.user)
            if user is None:
                raise ValueError(f"no user named {args.user!r}")
            user_id = user.id
    finally:
        await store.close()
    where = AlertFilter(user_id=user_id, stream_ids=args.stream, since=args.since, until=args.until)
    return create_sync_engine(url), where


def _existing_database_url(args: argparse.Namespace) -> str:
    """The database URL the settings name, which a command that only reads must find there: opening a
    SQLite file that is not there would make an empty one (a typo, or another folder's ``relay.db``)
    and answer from it as if there were no alerts."""
    url = Settings.from_env(database_url=args.database_url).database_url
    missing = _missing_sqlite_file(url)
    if missing is not None:
        raise ValueError(
            f"there is no database at {missing.resolve()} (run from the folder of its relay.db, "
            "give --database-url or set RELAY_DATABASE_URL)"
        )
    return url


def _missing_sqlite_file(url: str) -> Path | None:
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    path = Path(parsed.database).expanduser()
    return None if path.exists() else path


def _check_writable(out: Path, *, folder: bool = False) -> None:
    """Fail early and clearly, not with a traceback after the work is done."""
    if not out.parent.is_dir():
        raise ValueError(f"cannot write {out}: there is no folder {out.parent}")
    if out.is_dir() != folder and out.exists():
        raise ValueError(f"cannot write {out}: it is {'a file' if folder else 'a folder'}")


@contextlib.contextmanager
def _progress_bar(total: int, what: str) -> Iterator[tqdm[NoReturn]]:
    """A progress bar on stderr for ``total`` alerts; silent unless both stdout and stderr are terminals."""
    quiet = not (sys.stdout.isatty() and sys.stderr.isatty())
    with tqdm(total=total, desc=what, unit=" alerts", unit_scale=True, disable=quiet, file=sys.stderr) as bar:
        yield bar
