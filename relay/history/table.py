"""The alert table: what every reader of alert history reads, as Arrow record batches.

Exports (Parquet, CSV, JSON), the partitioned analytics copy and so the
DuckDB queries, the reports and the notebooks all read this one shape, made
here from the rows that :class:`~relay.store.AlertFilter` selects, so none of
them can disagree with ``GET /api/alerts`` about which alerts match or what
they say.

Rows are read in batches by keyset on the storage order (``seq``), with
SQLAlchemy Core on a blocking engine (run it in a thread of its own), as plain
values: the metadata as the JSON text the database holds, its well-known keys
picked out by the database itself, times as the database hands them.  One
batch becomes one Arrow record batch with real types (timestamps in UTC,
severity as a dictionary), column by column; nothing builds a Python object
per alert.  Memory is one batch, whatever the number of rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, Select, String, Text, cast, func, select, type_coerce

from relay.store.alerts import AlertFilter, matching
from relay.store.metadata_values import MetadataNumber, MetadataText
from relay.store.models import Alert, VideoStream, stored_day

ROWS_PER_BATCH: Final = 20_000
"""Rows per database read and per Arrow batch (and so per Parquet row group): big enough
that per-batch costs vanish, small enough that memory stays flat and low.  A batch held
as rows, columns and (for JSON) alert objects costs about 3.5 KB of Python memory per
row, and the process's RSS grows about twice that: at 50,000 rows ``relay export``
peaked at 395 (Parquet) to 460 MB (JSON) at 1M alerts, over issue 10's 400 MB; at
20,000, 280–290 MB, no slower (benchmarks/analytics.py)."""

SEVERITY = pa.dictionary(pa.int8(), pa.string())
UTC_MICROS = pa.timestamp("us", tz="UTC")
UTC_MILLIS = pa.timestamp("ms", tz="UTC")

SCHEMA: Final = pa.schema(
    [
        pa.field("seq", pa.int64(), nullable=False),
        pa.field("id", pa.string(), nullable=False),
        pa.field("streamId", pa.string(), nullable=False),
        pa.field("deviceName", pa.string()),
        pa.field("userId", pa.string(), nullable=False),
        pa.field("streamSeq", pa.int64(), nullable=False),
        pa.field("severity", SEVERITY, nullable=False),
        pa.field("message", pa.string(), nullable=False),
        pa.field("timestamp", pa.int64(), nullable=False),
        pa.field("eventTime", UTC_MILLIS),
        pa.field("createdAt", UTC_MICROS, nullable=False),
        pa.field("ref", pa.string()),
        pa.field("confidence", pa.float64()),
        pa.field("objectType", pa.string()),
        pa.field("locationX", pa.float64()),
        pa.field("locationY", pa.float64()),
        pa.field("locationWidth", pa.float64()),
        pa.field("locationHeight", pa.float64()),
        pa.field("metadata", pa.string(), nullable=False),
        pa.field("frameTimestamp", pa.int64()),
        pa.field("hasSnapshot", pa.bool_(), nullable=False),
        pa.field("reviewed", pa.bool_(), nullable=False),
        pa.field("falsePositive", pa.bool_(), nullable=False),
        pa.field("reviewedBy", pa.string()),
        pa.field("reviewedAt", UTC_MICROS),
        pa.field("keep", pa.bool_(), nullable=False),
        pa.field("note", pa.string()),
    ]
)
"""The table's columns (documented in docs/ANALYTICS.md).  ``timestamp`` is the client's
event time in ms exactly as sent; ``eventTime`` is the same as a timestamp, null where it
lies beyond year 9999 (which no reader's calendar holds)."""

MAX_EVENT_MILLIS: Final = 253_402_300_800_000
"""0001-01-01 .. 9999-12-31 is what pandas, DuckDB and Python can all show; beyond is null."""

_NUMBERS: Final = ("confidence", "location.x", "location.y", "location.width", "location.height")
"""The metadata's well-known numbers, in the order of the table's columns ``confidence``, ``locationX``, ..."""


def query(where: AlertFilter, dialect: str) -> Select[*tuple[Any, ...]]:
    """The rows of the table for ``where``, oldest first (the caller adds the keyset and the limit)."""
    created = type_coerce(Alert.created_at, String) if dialect == "sqlite" else Alert.created_at
    reviewed_at = type_coerce(Alert.reviewed_at, String) if dialect == "sqlite" else Alert.reviewed_at
    return (
        matching(where, with_stream=True)
        .with_only_columns(
            Alert.seq,
            Alert.id,
            Alert.stream_id,
            VideoStream.device_name,
            VideoStream.user_id,
            Alert.stream_seq,
            Alert.severity,
            Alert.message,
            Alert.timestamp,
            created,
            Alert.ref,
            *(MetadataNumber(path) for path in _NUMBERS),
            MetadataText("objectType"),
            cast(Alert.meta, Text),
            Alert.frame_timestamp,
            Alert.has_snapshot,
            Alert.reviewed,
            Alert.false_positive,
            Alert.reviewed_by,
            reviewed_at,
            Alert.keep,
            Alert.note,
        )
        .order_by(Alert.seq)
    )


def count(connection: Connection, where: AlertFilter) -> int:
    """How many alerts ``where`` selects (for a progress bar's total)."""
    return int(connection.scalar(select(func.count()).select_from(matching(where).subquery())) or 0)


def batches(
    connection: Connection, where: AlertFilter, *, after_seq: int = 0, rows_per_batch: int = ROWS_PER_BATCH
) -> Iterator[pa.RecordBatch]:
    """The alerts ``where`` selects with ``seq`` above ``after_seq``, oldest first, as record batches."""
    dialect = connection.dialect.name
    rows_query = query(where, dialect)
    while True:
        rows = connection.execute(rows_query.where(Alert.seq > after_seq).limit(rows_per_batch)).all()
        if not rows:
            return
        yield to_batch(rows, dialect)
        if len(rows) < rows_per_batch:
            return
        after_seq = rows[-1][0]


def to_batch(rows: Sequence[Any], dialect: str) -> pa.RecordBatch:
    """Rows of :func:`query` as a record batch of :data:`SCHEMA`."""
    (seq, ids, streams, names, users, stream_seqs, severities, messages, stamps, created, refs, *rest) = zip(
        *rows, strict=True
    )
    confidence, x, y, width, height, object_types, metadata, frame_stamps, snapshots, *review = rest
    reviewed, false_positive, reviewed_by, reviewed_at, keep, notes = review
    event_millis = pa.array(stamps, pa.int64())
    in_calendar = pc.less_equal(event_millis, MAX_EVENT_MILLIS)
    columns = [
        pa.array(seq, pa.int64()),
        pa.array(ids, pa.string()),
        pa.array(streams, pa.string()),
        pa.array(names, pa.string()),
        pa.array(users, pa.string()),
        pa.array(stream_seqs, pa.int64()),
        pa.array(severities, pa.string()).dictionary_encode().cast(SEVERITY),
        pa.array(messages, pa.string()),
        event_millis,
        pc.if_else(in_calendar, event_millis, None).cast(pa.int64()).cast(UTC_MILLIS),
        _created(created, dialect),
        pa.array(refs, pa.string()),
        pa.array(confidence, pa.float64()),
        pa.array(object_types, pa.string()),
        pa.array(x, pa.float64()),
        pa.array(y, pa.float64()),
        pa.array(width, pa.float64()),
        pa.array(height, pa.float64()),
        pa.array(metadata, pa.string()),
        pa.array(frame_stamps, pa.int64()),
        _flags(snapshots),
        _flags(reviewed),
        _flags(false_positive),
        pa.array(reviewed_by, pa.string()),
        _created(reviewed_at, dialect),
        _flags(keep),
        pa.array(notes, pa.string()),
    ]
    return pa.RecordBatch.from_arrays(columns, schema=SCHEMA)


def _flags(values: Sequence[Any]) -> pa.Array:
    return pa.array(values, pa.bool_())


def _created(values: Sequence[Any], dialect: str) -> pa.Array:
    """``createdAt`` (or another time) as UTC timestamps: SQLite keeps ``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC (see
    :class:`~relay.store.models.UTCDateTime`), parsed by Arrow; PostgreSQL hands aware datetimes."""
    if dialect == "sqlite":
        return pc.cast(pa.array(values, pa.string()), pa.timestamp("us")).cast(UTC_MICROS)
    return pa.array(values, UTC_MICROS)


def empty() -> pa.Table:
    return SCHEMA.empty_table()


def day_filter(where: AlertFilter, day: date) -> AlertFilter:
    """``where`` narrowed to the alerts stored on ``day`` (UTC)."""
    start = datetime.combine(day, time(), UTC)
    end = start + timedelta(days=1)
    since = start if where.since is None else max(where.since, start)
    until = end if where.until is None else min(where.until, end)
    return replace(where, since=since, until=until)


def days_with_alerts(
    connection: Connection, where: AlertFilter, *, after_seq: int = 0, reviewed_since: datetime | None = None
) -> list[date]:
    """The days (UTC) on which alerts that ``where`` selects were stored: those with ``seq`` above
    ``after_seq``, or, with ``reviewed_since``, those reviewed since then (whatever their ``seq``)."""
    day = stored_day(connection.dialect.name)
    changed = Alert.seq > after_seq if reviewed_since is None else Alert.reviewed_at >= reviewed_since
    rows = connection.execute(matching(where).where(changed).with_only_columns(day).distinct().order_by(None)).scalars()
    return sorted(date.fromisoformat(value) for value in rows)


def high_water(connection: Connection) -> int:
    """The highest ``seq`` stored so far (0 for none)."""
    return int(connection.scalar(select(func.max(Alert.seq))) or 0)
