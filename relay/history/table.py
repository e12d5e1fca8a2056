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

import itertools
import logging
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import (
    ColumnElement,
    Connection,
    Dialect,
    Select,
    String,
    Text,
    bindparam,
    cast,
    func,
    select,
    type_coerce,
)

from relay.history import metadata_columns, sqlite_pages
from relay.store.alerts import AlertFilter, matching
from relay.store.metadata_values import MetadataNumber, MetadataText
from relay.store.models import Alert, VideoStream, stored_day

logger = logging.getLogger(__name__)

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


def query(where: AlertFilter, dialect: str, *, well_known_by_sql: bool = True) -> Select[*tuple[Any, ...]]:
    """The rows of the table for ``where``, oldest first (the caller adds the keyset and the limit).

    Without ``well_known_by_sql``, the six columns of the metadata's well-known keys are left out,
    for :mod:`relay.history.metadata_columns` to pick out of the metadata.
    """
    created = type_coerce(Alert.created_at, String) if dialect == "sqlite" else Alert.created_at
    reviewed_at = type_coerce(Alert.reviewed_at, String) if dialect == "sqlite" else Alert.reviewed_at
    well_known: list[ColumnElement[Any]] = [MetadataNumber(path) for path in _NUMBERS]
    well_known.append(MetadataText("objectType"))
    stream: list[ColumnElement[Any]] = [VideoStream.device_name.expression, VideoStream.user_id.expression]
    if dialect == "sqlite":
        # Looked up per alert, not joined: with a join, SQLite starts at the (few) streams and reads
        # a time range's index once per stream, then sorts it all for every page (0.9 s a page of a
        # day at 1M alerts); looked up, it walks the alerts in order (0.5 s, and less from a keyset).
        rows, (device_name, user_id) = matching(where), [_of_stream(column) for column in stream]
    else:
        rows, (device_name, user_id) = matching(where, with_stream=True), stream
    return rows.with_only_columns(
        Alert.seq,
        Alert.id,
        Alert.stream_id,
        device_name,
        user_id,
        Alert.stream_seq,
        Alert.severity,
        Alert.message,
        Alert.timestamp,
        created,
        Alert.ref,
        *(well_known if well_known_by_sql else ()),
        cast(Alert.meta, Text),
        Alert.frame_timestamp,
        Alert.has_snapshot,
        Alert.reviewed,
        Alert.false_positive,
        Alert.reviewed_by,
        reviewed_at,
        Alert.keep,
        Alert.note,
    ).order_by(Alert.seq)


def _of_stream(column: ColumnElement[Any]) -> ColumnElement[Any]:
    """``column`` of the alert's stream, as a subquery per alert (see :func:`query`)."""
    return select(column).where(VideoStream.id == Alert.stream_id).scalar_subquery()


def count(connection: Connection, where: AlertFilter) -> int:
    """How many alerts ``where`` selects (for a progress bar's total)."""
    return int(connection.scalar(select(func.count()).select_from(matching(where).subquery())) or 0)


def batches(
    connection: Connection, where: AlertFilter, *, after_seq: int = 0, rows_per_batch: int = ROWS_PER_BATCH
) -> Iterator[pa.RecordBatch]:
    """The alerts ``where`` selects with ``seq`` above ``after_seq``, oldest first, as record batches.

    From a SQLite file, pages come from a child process that reads them in C
    (:mod:`relay.history.sqlite_pages`) until its driver refuses one, and the rest through SQLAlchemy;
    from any other database, through SQLAlchemy.  The child takes half a second to start, so a read
    that may fit in one page has its first page read through SQLAlchemy and starts the child only if
    there is more; a time range whose stretch of storage is longer than a page (days of the
    partitioned copy) starts with the child: its first page through SQLAlchemy took longer than the
    child's start (20,000 rows made Python values, then Arrow ones).
    """
    dialect = connection.dialect.name
    last: int | None = None
    if where.since is not None or where.until is not None:
        span = _span(connection, where, after_seq)
        if span is None:
            return
        after_seq, last = span
    page = _page(query(where, dialect), rows_per_batch, last)
    path = sqlite_pages.database_file(connection)
    if path is None or last is None or last - after_seq <= rows_per_batch:
        read = 0
        for batch in _sqlalchemy_pages(connection, page, after_seq, rows_per_batch, dialect, 1 if path else None):
            yield batch
            read, after_seq = batch.num_rows, batch.column(0)[-1].as_py()
        if path is None or read < rows_per_batch:
            return
    if path is not None:
        plain = _page(query(where, dialect, well_known_by_sql=False), rows_per_batch, last)
        child = _child_pages(path, plain, after_seq, rows_per_batch, connection.dialect)
        if child is not None:
            read_again = 0
            with child:
                for raw in child:
                    batch, again = _with_well_known(raw, connection, page, after_seq, dialect)
                    read_again += again
                    yield batch
                    after_seq = raw.column(0)[-1].as_py()
            if read_again:
                logger.info(
                    "%d pages of the alert table held metadata Arrow's JSON reader refuses (a confidence of "
                    "\"0.9\", say): read again through SQLAlchemy", read_again,
                )  # fmt: skip
            if child.refused is None:
                return
            logger.warning(
                "the SQLite reader stopped after alert %d (%s); reading the rest through SQLAlchemy",
                child.refused.seq, child.refused.error,
            )  # fmt: skip
            after_seq = child.refused.seq
    yield from _sqlalchemy_pages(connection, page, after_seq, rows_per_batch, dialect)  # one child per read


def _sqlalchemy_pages(
    connection: Connection, page: Select[Any], after_seq: int, rows: int, dialect: str, pages: int | None = None
) -> Iterator[pa.RecordBatch]:
    """Pages of ``page`` read through SQLAlchemy after ``after_seq``, until one is short (or ``pages`` of them)."""
    for _ in itertools.repeat(None) if pages is None else range(pages):
        batch = to_batch(connection.execute(page, {"after": after_seq}).all(), dialect)
        if batch.num_rows:
            yield batch
        if batch.num_rows < rows:
            return
        after_seq = batch.column(0)[-1].as_py()


def _page(rows: Select[Any], limit: int, last: int | None) -> Select[Any]:
    """``rows`` after the keyset value of the parameter ``after`` (and up to ``last``), at most ``limit`` of them."""
    if last is not None:
        rows = rows.where(Alert.seq <= last)
    return rows.where(Alert.seq > bindparam("after")).limit(limit)


def _span(connection: Connection, where: AlertFilter, after_seq: int) -> tuple[int, int] | None:
    """The keyset value to start after and the last ``seq`` of what ``where`` selects above ``after_seq``
    (None: nothing).  For a time range the index on ``createdAt`` finds them at once, and the pages then
    walk only that stretch of storage instead of every alert before it (a day of the partitioned copy)."""
    matched = matching(where).where(Alert.seq > after_seq).subquery()
    first, last = connection.execute(select(func.min(matched.c.seq), func.max(matched.c.seq))).one()
    return None if first is None else (max(after_seq, first - 1), last)


def _with_well_known(
    raw: pa.RecordBatch, connection: Connection, page: Select[Any], after_seq: int, dialect: str
) -> tuple[pa.RecordBatch, bool]:
    """A page of the child reader with the metadata's well-known keys picked out by Arrow, or, where
    Arrow refuses the page, the same page read again with them picked out by SQL (up to the same
    last alert, whatever was stored or removed meanwhile); and whether it was read again."""
    columns = raw.columns
    values = metadata_columns.well_known(columns[_METADATA_AT_READ])
    if values is None:
        through = page.where(Alert.seq <= bindparam("through"))
        rows = connection.execute(through, {"after": after_seq, "through": columns[0][-1].as_py()}).all()
        return to_batch(rows, dialect), True
    return _assemble([*columns[:_WELL_KNOWN_AT], *values, *columns[_WELL_KNOWN_AT:]], dialect), False


def _child_pages(
    path: Path, page: Select[Any], after_seq: int, rows: int, dialect: Dialect
) -> sqlite_pages.ChildPages | None:
    try:
        return sqlite_pages.ChildPages(
            path, page, after="after", after_seq=after_seq, rows=rows, dialect=dialect, schema=_READ_SCHEMA
        )
    except (TypeError, OSError) as error:
        logger.warning("the SQLite reader could not start (%s); reading through SQLAlchemy", error)
        return None


def _read_types(dialect: str) -> list[pa.DataType]:
    """The Arrow type of each column of :func:`query` as read (times: SQLite's text, or PostgreSQL's)."""
    moment = pa.string() if dialect == "sqlite" else UTC_MICROS
    text, integer, number, flag = pa.string(), pa.int64(), pa.float64(), pa.bool_()
    return [
        integer, text, text, text, text, integer, text, text, integer, moment, text,
        number, number, number, number, number, text, text, integer, flag, flag, flag, text, moment, flag, text,
    ]  # fmt: skip


_WELL_KNOWN_AT: Final = 11
"""Where the six columns of the metadata's well-known keys are in :func:`query`'s columns."""
_METADATA_AT_READ: Final = _WELL_KNOWN_AT
"""Where the metadata text is in the columns without them."""
_READ_SCHEMA: Final = pa.schema(
    [
        (f"c{index}", kind)
        for index, kind in enumerate(_read_types("sqlite"))
        if not _WELL_KNOWN_AT <= index < _WELL_KNOWN_AT + 6
    ]
)
"""The columns of :func:`query` on SQLite without the well-known keys', as the child reader sends them."""


def to_batch(rows: Sequence[Any], dialect: str) -> pa.RecordBatch:
    """Rows of :func:`query` as a record batch of :data:`SCHEMA`."""
    if not rows:
        return pa.RecordBatch.from_pylist([], schema=SCHEMA)
    columns = zip(*rows, strict=True)
    return _assemble(
        [pa.array(values, kind) for values, kind in zip(columns, _read_types(dialect), strict=True)], dialect
    )


def _assemble(columns: Sequence[pa.Array], dialect: str) -> pa.RecordBatch:
    """The columns of :func:`query`, as read with :func:`_read_types`, as a record batch of :data:`SCHEMA`."""
    (seq, ids, streams, names, users, stream_seqs, severities, messages, stamps, created, refs, *rest) = columns
    confidence, x, y, width, height, object_types, metadata, frame_stamps, snapshots, *review = rest
    reviewed, false_positive, reviewed_by, reviewed_at, keep, notes = review
    in_calendar = pc.less_equal(stamps, MAX_EVENT_MILLIS)
    arrays = [
        seq, ids, streams, names, users, stream_seqs,
        severities.dictionary_encode().cast(SEVERITY),
        messages,
        stamps,
        pc.if_else(in_calendar, stamps, None).cast(pa.int64()).cast(UTC_MILLIS),
        _created(created, dialect),
        refs, confidence, object_types, x, y, width, height, metadata, frame_stamps, snapshots,
        reviewed, false_positive, reviewed_by,
        _created(reviewed_at, dialect),
        keep, notes,
    ]  # fmt: skip
    return pa.RecordBatch.from_arrays(arrays, schema=SCHEMA)


def _created(values: pa.Array, dialect: str) -> pa.Array:
    """``createdAt`` (or another time) as UTC timestamps: SQLite keeps ``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC (see
    :class:`~relay.store.models.UTCDateTime`), parsed by Arrow; PostgreSQL hands aware datetimes."""
    if dialect == "sqlite":
        return pc.cast(values, pa.timestamp("us")).cast(UTC_MICROS)
    return values


def empty() -> pa.Table:
    return SCHEMA.empty_table()


def days_filter(where: AlertFilter, first: date, last: date | None = None) -> AlertFilter:
    """``where`` narrowed to the alerts stored from ``first`` to ``last`` (UTC; both included, ``last`` by
    default ``first``)."""
    start = datetime.combine(first, time(), UTC)
    end = datetime.combine(last or first, time(), UTC) + timedelta(days=1)
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
