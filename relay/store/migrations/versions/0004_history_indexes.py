"""History that stays fast: ``alert.objectType`` as an indexed column, and a trigram index of messages.

Existing alerts get their ``objectType`` from their metadata (a string of at
most 200 characters, as the relay keeps it from now on).  The message index is
whatever the database can have (see ``relay.store.search``): on SQLite an FTS5
table ``alert_text`` with the trigram tokenizer over ``alert`` (external content,
kept by triggers, built here from the existing rows); on PostgreSQL a GIN index
with ``pg_trgm``, creating the extension if it is available and allowed.  A
database that can have neither still migrates: its text searches are bounded
scans.

A later migration that rebuilds ``alert`` on SQLite (Alembic's batch mode copies
the table) drops these triggers with it and must create them again.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

import logging
import sqlite3

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

log = logging.getLogger("relay.store")

_SQLITE_TEXT_INDEX = (
    "CREATE VIRTUAL TABLE alert_text USING fts5("
    "message, content='alert', content_rowid='seq', tokenize='trigram case_sensitive 0')",
    "CREATE TRIGGER alert_text_insert AFTER INSERT ON alert BEGIN "
    "INSERT INTO alert_text(rowid, message) VALUES (new.seq, new.message); END",
    "CREATE TRIGGER alert_text_delete AFTER DELETE ON alert BEGIN "
    "INSERT INTO alert_text(alert_text, rowid, message) VALUES ('delete', old.seq, old.message); END",
    "CREATE TRIGGER alert_text_update AFTER UPDATE OF message ON alert BEGIN "
    "INSERT INTO alert_text(alert_text, rowid, message) VALUES ('delete', old.seq, old.message); "
    "INSERT INTO alert_text(rowid, message) VALUES (new.seq, new.message); END",
    "INSERT INTO alert_text(alert_text) VALUES ('rebuild')",
)


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("alert") as table:
        table.add_column(sa.Column("objectType", sa.String(length=200), nullable=True))
    if bind.dialect.name == "postgresql":
        op.execute(
            """UPDATE alert SET "objectType" = metadata->>'objectType' """
            "WHERE jsonb_typeof(metadata->'objectType') = 'string' AND char_length(metadata->>'objectType') <= 200"
        )
    else:
        op.execute(
            """UPDATE alert SET "objectType" = json_extract(metadata, '$.objectType') """
            "WHERE json_type(metadata, '$.objectType') = 'text' "
            "AND length(json_extract(metadata, '$.objectType')) <= 200"
        )
    with op.batch_alter_table("alert") as table:
        table.create_index("ix_alert_object_type_seq", ["objectType", "seq"], unique=False)
    if bind.dialect.name == "postgresql":
        _postgresql_text_index(bind)
    elif bind.dialect.name == "sqlite":
        if _sqlite_has_trigram():
            for statement in _SQLITE_TEXT_INDEX:
                op.execute(statement)
        else:
            log.warning("this SQLite has no FTS5 trigram tokenizer (3.34+): text searches will be bounded scans")


def _sqlite_has_trigram() -> bool:
    probe = sqlite3.connect(":memory:")
    try:
        probe.execute("CREATE VIRTUAL TABLE probe USING fts5(x, tokenize='trigram')")
    except sqlite3.OperationalError:
        return False
    finally:
        probe.close()
    return True


def _postgresql_text_index(bind: sa.Connection) -> None:
    """A ``pg_trgm`` GIN index on ``alert.message``, with the extension wherever it is installed.

    An extension exists once per database, in one schema; its operator class is
    named with that schema, so that relays in other schemas of the same database
    share it.  Creating it is tried in a savepoint: a role that may not (the
    extension is trusted, so the database owner may) leaves the migration going.
    """
    where = "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_trgm'"
    schema = bind.scalar(sa.text(where))
    if schema is None:
        if not bind.scalar(sa.text("SELECT count(*) FROM pg_available_extensions WHERE name = 'pg_trgm'")):
            log.warning("PostgreSQL has no pg_trgm extension (contrib): text searches will be bounded scans")
            return
        try:
            with bind.begin_nested():
                bind.execute(sa.text("CREATE EXTENSION pg_trgm"))
        except sa.exc.DBAPIError as error:
            log.warning("could not create the pg_trgm extension (%s): text searches will be bounded scans", error.orig)
            return
        schema = bind.scalar(sa.text(where))
    op.execute(f"CREATE INDEX ix_alert_message_trgm ON alert USING gin (message {schema}.gin_trgm_ops)")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for name in ("alert_text_insert", "alert_text_delete", "alert_text_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS alert_text")
    else:
        op.execute("DROP INDEX IF EXISTS ix_alert_message_trgm")
    with op.batch_alter_table("alert") as table:
        table.drop_index("ix_alert_object_type_seq")
        table.drop_column("objectType")
