"""The text index of alert messages: what lets ``q`` (a case-insensitive substring) skip a full scan.

A substring search cannot use a B-tree, so each database gets the trigram index
it has: SQLite an FTS5 table with the ``trigram`` tokenizer (``alert_text``,
external content over ``alert``, kept by triggers), PostgreSQL a GIN index with
``pg_trgm``'s ``gin_trgm_ops`` on ``alert.message`` (``ix_alert_message_trgm``).
Migration 0004 creates whichever the database can have: FTS5's trigram tokenizer
needs SQLite 3.34, ``pg_trgm`` ships with PostgreSQL's contrib but must be allowed
(a trusted extension: the database owner may create it).  Without one, text
searches are bounded scans (:mod:`relay.store.alerts`).

Either index only finds candidates: a trigram index can answer only for text
with a run of three characters, and its idea of case (Unicode folding) is not
quite the database's ``ILIKE``.  The filter itself stays the one in
``relay.store.alerts._filtered``, so results are exactly the plain substring
match whatever the index does; PostgreSQL's planner uses the GIN index for that
very ``ILIKE``, SQLite's FTS5 table is joined in by the alert queries.

These objects live outside the models (:data:`SEARCH_OBJECTS`): Alembic's
autogenerate must neither create nor drop them.
"""

from __future__ import annotations

import enum
import re

from sqlalchemy import Integer, Text, column, table, text
from sqlalchemy.ext.asyncio import AsyncEngine


class TextIndex(enum.Enum):
    """Which text index a database has."""

    NONE = "none"
    FTS5 = "fts5"
    TRIGRAM_GIN = "pg_trgm"


ALERT_TEXT = table("alert_text", column("rowid", Integer), column("message", Text))
"""SQLite's FTS5 table: ``rowid`` is ``alert.seq``, ``message`` the alert's message."""

TRIGRAM_INDEX = "ix_alert_message_trgm"

SEARCH_OBJECTS = frozenset(
    {
        "alert_text",
        "alert_text_data",
        "alert_text_idx",
        "alert_text_docsize",
        "alert_text_config",
        TRIGRAM_INDEX,
    }
)
"""Tables and indexes of the text index (FTS5 keeps its shadow tables beside its own)."""

_RUN_OF_THREE = re.compile(r"[^\W_]{3}")


def usable_for(text_filter: str) -> bool:
    """Whether a trigram index narrows a search for ``text_filter``.

    Both indexes need three characters in a row: FTS5 scans its whole table for
    a shorter pattern, and ``pg_trgm`` makes trigrams of letters and digits only,
    so a run of three of those is what both can use.
    """
    return _RUN_OF_THREE.search(text_filter) is not None


def fts_pattern(text_filter: str) -> str:
    """The FTS5 ``LIKE`` pattern that finds every message containing ``text_filter``, and maybe more.

    FTS5 answers ``LIKE`` from its index only without an ``ESCAPE`` clause, so a
    ``%`` or ``_`` of the text stays a wildcard here: that only widens the
    candidates, which the exact filter then narrows.
    """
    return f"%{text_filter}%"


async def text_index(engine: AsyncEngine) -> TextIndex:
    """The text index the (migrated) database at ``engine`` has."""
    async with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            found = await connection.scalar(
                text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alert_text'")
            )
            return TextIndex.FTS5 if found else TextIndex.NONE
        if connection.dialect.name == "postgresql":
            found = await connection.scalar(text("SELECT to_regclass(:name) IS NOT NULL"), {"name": TRIGRAM_INDEX})
            return TextIndex.TRIGRAM_GIN if found else TextIndex.NONE
    return TextIndex.NONE


def include_name(name: str | None, _type: str, _parents: object) -> bool:
    """Alembic's ``include_name`` hook: autogenerate compares everything but the text index."""
    return name not in SEARCH_OBJECTS
