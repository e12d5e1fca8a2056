"""The database schema: users, their API tokens, their video streams and alerts.

Column names are the contract's JSON names (``userId``, ``deviceName``, ``lastSeen``…),
as the system this relay replaced had them, so databases and queries written for it keep working.  Times are stored in
UTC and always come back timezone-aware (see :class:`UTCDateTime`), whatever the
database does with time zones.

``alert.seq`` is the storage order: an integer that only grows.  ``GET
/api/alerts`` pages by it, and ties in ``createdAt`` are broken by it.
``alert.streamSeq`` is the alert's place among its stream's alerts (1, 2, 3 …),
taken from ``video_stream.lastAlertSeq`` under that row's lock inside the
alert's transaction, so a stream's alerts commit in this order on any number of
nodes; ``sinceAlertId`` replays by it, and so misses none.

``alert.objectType`` is ``metadata.objectType`` again, as a column of its own so
that an index can serve the history's object-type filter (a JSON path is not
indexed the same way on both databases).  It is filled in by a column default
from the metadata of every insert, so no writer can forget it.

The alert table's indexes each serve a shape of the history queries
(:mod:`relay.store.alerts`), which all read newest first by ``seq``:

- the primary key ``seq``: no filter, or filters no index serves better; a
  backward scan stops after a page, and a cursor (``seq < ?``) starts it anywhere;
- ``ix_alert_stream_seq`` (``streamId``, ``seq``): a stream's alerts in order
  (``streamId=``, and the replay by ``streamSeq`` uses ``uq_alert_stream_stream_seq``);
- ``ix_alert_object_type_seq`` (``objectType``, ``seq``): one object type in order;
- ``ix_alert_created`` (``createdAt``): a time window (``since``/``until``) narrower
  than the newest alerts, read and then sorted by ``seq``;
- the text index of the message, outside these models because each database has
  its own kind (:mod:`relay.store.search`): a trigram FTS5 table on SQLite, a
  ``pg_trgm`` GIN index on PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ColumnElement,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    func,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.expression import false

from relay.clock import utcnow


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and returned timezone-aware.

    SQLite has no time zones and hands back naive datetimes; PostgreSQL's
    ``timestamptz`` hands back aware ones.  This type makes both look the same.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONDocument = JSON().with_variant(JSONB(), "postgresql")
AutoIncrementId = BigInteger().with_variant(Integer(), "sqlite")
"""A 64-bit counter; SQLite's autoincrement needs its own INTEGER type."""


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "user"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    password_hash: Mapped[str | None] = mapped_column("passwordHash", String(255))
    created_at: Mapped[datetime] = mapped_column("createdAt", UTCDateTime, default=utcnow)


class ApiToken(Base):
    """A bearer token, kept only as its SHA-256 hash and its first characters (to tell tokens apart)."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(AutoIncrementId, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column("userId", ForeignKey("user.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column("tokenHash", String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column("createdAt", UTCDateTime, default=utcnow)
    prefix: Mapped[str | None] = mapped_column(String(16), index=True)
    """:func:`~relay.identity.credentials.token_prefix` of the token (None for tokens older than revision 0006)."""
    last_used_at: Mapped[datetime | None] = mapped_column("lastUsedAt", UTCDateTime)
    """When a relay last verified it (to the minute: written at most once a minute)."""


class VideoStream(Base):
    __tablename__ = "video_stream"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column("userId", ForeignKey("user.id", ondelete="CASCADE"), index=True)
    device_name: Mapped[str] = mapped_column("deviceName", String(200))
    device_type: Mapped[str] = mapped_column("deviceType", String(100))
    status: Mapped[str] = mapped_column(String(16), default="offline")
    last_seen: Mapped[datetime | None] = mapped_column("lastSeen", UTCDateTime)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONDocument, default=dict)
    created_at: Mapped[datetime] = mapped_column("createdAt", UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column("updatedAt", UTCDateTime, default=utcnow, onupdate=utcnow)
    last_alert_seq: Mapped[int] = mapped_column("lastAlertSeq", BigInteger, default=0, server_default="0")
    producer_node: Mapped[str | None] = mapped_column("producerNode", String(32))
    """The relay node whose connection is the stream's producer while it is not ``offline``."""


OBJECT_TYPE_CHARS = 200
"""The longest object type kept in ``alert.objectType``.

It is the longest ``objectType`` filter ``GET /api/alerts`` takes, so a longer
one can only be matched by the JSON (see ``relay.store.alerts``); the bound keeps
index entries small whatever a client puts in its metadata.
"""


def object_type_of(metadata: object) -> str | None:
    """An alert's ``metadata.objectType`` as ``alert.objectType`` keeps it: a string of at most 200 characters."""
    value = metadata.get("objectType") if isinstance(metadata, dict) else None
    return value if isinstance(value, str) and len(value) <= OBJECT_TYPE_CHARS else None


def _object_type_default(context: DefaultExecutionContext) -> str | None:
    """The column default: every insert, ORM or Core, one row or many, fills ``objectType`` in."""
    parameters = context.get_current_parameters()  # type: ignore[no-untyped-call]  # untyped in SQLAlchemy 2.1
    return object_type_of(parameters.get("metadata"))


class Alert(Base):
    __tablename__ = "alert"
    __table_args__ = (
        UniqueConstraint("streamId", "ref", name="uq_alert_stream_ref"),
        UniqueConstraint("streamId", "streamSeq", name="uq_alert_stream_stream_seq"),
        Index("ix_alert_stream_seq", "streamId", "seq"),
        Index("ix_alert_created", "createdAt"),
        Index("ix_alert_object_type_seq", "objectType", "seq"),
        Index("ix_alert_stream_reviewed", "streamId", "reviewed"),
        Index("ix_alert_reviewed_at", "reviewedAt"),
    )

    seq: Mapped[int] = mapped_column(AutoIncrementId, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    stream_id: Mapped[str] = mapped_column("streamId", ForeignKey("video_stream.id", ondelete="CASCADE"))
    stream_seq: Mapped[int] = mapped_column("streamSeq", BigInteger)
    severity: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONDocument, default=dict)
    timestamp: Mapped[int] = mapped_column(BigInteger)
    ref: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column("createdAt", UTCDateTime, default=utcnow)
    object_type: Mapped[str | None] = mapped_column(
        "objectType", String(OBJECT_TYPE_CHARS), default=_object_type_default
    )
    """:func:`object_type_of` the metadata, filled in on insert."""
    frame_timestamp: Mapped[int | None] = mapped_column("frameTimestamp", BigInteger)
    """The ``timestamp`` of the frame the client said the alert is about."""
    has_snapshot: Mapped[bool] = mapped_column("hasSnapshot", Boolean, default=False, server_default=false())
    """Whether an :class:`AlertSnapshot` was stored with it (kept here so that listing needs no join)."""
    reviewed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    false_positive: Mapped[bool] = mapped_column("falsePositive", Boolean, default=False, server_default=false())
    reviewed_by: Mapped[str | None] = mapped_column("reviewedBy", String(150))
    """The username of whoever last changed ``reviewed`` or ``falsePositive``."""
    reviewed_at: Mapped[datetime | None] = mapped_column("reviewedAt", UTCDateTime)
    keep: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """Kept whatever the retention: an alert someone marked as evidence."""
    note: Mapped[str | None] = mapped_column(Text)
    """The reviewer's note."""


class AlertSnapshot(Base):
    """The frame an alert is about, stored with it in its transaction (so ``alert-stored`` means both are)."""

    __tablename__ = "alert_snapshot"

    alert_id: Mapped[str] = mapped_column("alertId", ForeignKey("alert.id", ondelete="CASCADE"), primary_key=True)
    jpeg: Mapped[bytes] = mapped_column(LargeBinary)
    frame_timestamp: Mapped[int] = mapped_column("frameTimestamp", BigInteger)


class JobRun(Base):
    """When a job that one node at a time runs (the daily retention) last ran; see :mod:`relay.store.jobs`."""

    __tablename__ = "job_run"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    ran_at: Mapped[datetime] = mapped_column("ranAt", UTCDateTime)


def stored_day(dialect: str) -> ColumnElement[str]:
    """The UTC day an alert was stored on, as ``YYYY-MM-DD`` text, in the SQL of ``dialect``.

    SQLite keeps ``createdAt`` as UTC text already; PostgreSQL's ``timestamptz``
    is converted to UTC first, whatever the session's time zone.
    """
    if dialect == "sqlite":
        return func.substr(type_coerce(Alert.created_at, String), 1, 10)
    return func.to_char(func.timezone("UTC", Alert.created_at), "YYYY-MM-DD")
