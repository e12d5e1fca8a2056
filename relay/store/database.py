"""Opening the database: one async engine per process, migrated on start.

SQLite (the default) is opened in WAL mode with a busy timeout, so the CLI can
add users and export alerts while ``relay serve`` runs on the same file.
PostgreSQL is reached with psycopg 3, which picks its async driver by itself.

The schema is owned by Alembic (``relay/store/migrations``).  :func:`migrate`
brings any database, empty or older, to the newest revision; relay nodes that
start together on one PostgreSQL database take an advisory lock so that only
one of them migrates.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import Connection, Engine, event, exc, inspect, make_url, text
from sqlalchemy import create_engine as create_blocking_engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
SCHEMA_REVISION: Final = "0007"
"""The newest migration's revision (a test checks that it is Alembic's head).  A database already
there is not handed to Alembic at all: importing it and running an upgrade that does nothing cost
every ``relay`` command and every start about 0.7 s."""
_MIGRATION_LOCK_ID = 0x76_69_67_69  # "vigi": any constant shared by all nodes

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///relay.db"


def normalise_url(url: str) -> str:
    """Accept the URLs people type and turn them into async SQLAlchemy URLs.

    ``postgresql://`` and ``postgres://`` become ``postgresql+psycopg://`` and
    ``sqlite:///`` becomes ``sqlite+aiosqlite:///``.
    """
    parsed = make_url(url)
    driver = parsed.drivername
    if driver in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif driver == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    return parsed.render_as_string(hide_password=False)


def is_unavailable(error: BaseException) -> bool:
    """Whether ``error`` means the database cannot be reached now (gone, restarting, locked, timing out).

    Such a failure is not the client's and not a bug: the relay answers
    ``unavailable`` (WebSocket) or 503 (REST), so clients resend later, and
    recovers by itself when the database is back.  Anything else from the
    database (a constraint, a bad query) is a real error.
    """
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, exc.OperationalError | exc.InterfaceError | exc.TimeoutError | OSError)


CONNECT_TIMEOUT = 5
"""Seconds to wait for a PostgreSQL connection before the relay calls the database unavailable."""


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine for ``url``, with SQLite tuned for a server and a CLI side by side.

    PostgreSQL connections are checked before use (a node that lost its
    database notices at the next query, not in the middle of it) and give up
    connecting after :data:`CONNECT_TIMEOUT` seconds.
    """
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_async_engine(url, **kwargs)
    else:
        kwargs.setdefault("connect_args", {"connect_timeout": CONNECT_TIMEOUT})
        engine = create_async_engine(url, pool_pre_ping=True, pool_timeout=CONNECT_TIMEOUT, **kwargs)
    if engine.dialect.name == "sqlite":
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        event.listen(engine.sync_engine, "connect", _tune_sqlite)
    return engine


def create_sync_engine(url: str) -> Engine:
    """A blocking engine on the same database, for work that runs in a thread of its own.

    Exports and the analytics copy read hundreds of thousands of rows: in a
    thread, with the blocking driver (``sqlite3``, or psycopg in its blocking
    mode), they cost the event loop nothing but a share of the GIL, and they
    skip the asyncio adapter's hop per fetch.  It never migrates: whoever
    opened the :class:`~relay.store.Store` did.
    """
    parsed = make_url(normalise_url(url))
    if parsed.drivername == "sqlite+aiosqlite":
        engine = create_blocking_engine(parsed.set(drivername="sqlite"))
        event.listen(engine, "connect", _tune_sqlite)
        return engine
    return create_blocking_engine(
        parsed, pool_pre_ping=True, pool_timeout=CONNECT_TIMEOUT, connect_args={"connect_timeout": CONNECT_TIMEOUT}
    )


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration, built in code so no ``alembic.ini`` is needed to run."""
    from alembic.config import Config  # only where a migration runs: see SCHEMA_REVISION

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


async def migrate(engine: AsyncEngine) -> None:
    """Create or upgrade the schema to the newest revision."""
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
        if await connection.run_sync(revision_of) == SCHEMA_REVISION:
            return
        from alembic import command  # only where a migration runs: see SCHEMA_REVISION

        await connection.run_sync(lambda sync: command.upgrade(alembic_config(sync), "head"))


def revision_of(connection: Connection) -> str | None:
    """The schema revision Alembic recorded in the database; None for a database it never migrated."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def database_url_from_env() -> str:
    return os.environ.get("RELAY_DATABASE_URL", DEFAULT_DATABASE_URL)
