"""Alembic environment: migrate the connection the relay hands over, or the database
named by ``RELAY_DATABASE_URL`` when run as ``alembic -c relay/store/alembic.ini ...``."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection

from relay.store.database import create_engine, database_url_from_env
from relay.store.models import Base
from relay.store.search import include_name

target_metadata = Base.metadata


def run_with(connection: Connection) -> None:
    context.configure(
        connection=connection, target_metadata=target_metadata, render_as_batch=True, include_name=include_name
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_from_environment() -> None:
    engine = create_engine(database_url_from_env())
    async with engine.begin() as connection:
        await connection.run_sync(run_with)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(
        url=database_url_from_env(), target_metadata=target_metadata, literal_binds=True, include_name=include_name
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    given = context.config.attributes.get("connection")
    if given is not None:
        run_with(given)
    else:
        asyncio.run(run_from_environment())
