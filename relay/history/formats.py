"""Parquet, CSV and JSON written incrementally: record batches in, bytes out, as they come.

Each :class:`Encoder` takes the alert table (:mod:`relay.history.table`) one
record batch at a time and hands back the bytes that batch completed, so an
export of any size is written — to a file or an HTTP answer — with one batch
in memory.  Parquet gets a row group per batch (what lets DuckDB read with
every core and skip by value), CSV a block of lines, JSON a run of array items.

The JSON form is an array of alerts exactly as ``GET /api/alerts`` lists them
(:func:`relay.representation.alert_json`); the metadata text the database holds
goes into it as it is, never parsed and written again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final, Literal, Protocol

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from relay.history.table import SCHEMA

ExportFormat = Literal["parquet", "csv", "json"]
FORMATS: Final[tuple[ExportFormat, ...]] = ("parquet", "csv", "json")
MEDIA_TYPES: Final[dict[ExportFormat, str]] = {
    "parquet": "application/vnd.apache.parquet",
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
}
ISO_MILLIS: Final = "%Y-%m-%dT%H:%M:%SZ"
"""Arrow's strftime writes a millisecond timestamp's seconds with their fraction:
2026-11-25T20:09:14.123Z, as the API writes times."""


class Encoder(Protocol):
    """One export being written; see the module docstring."""

    def encode(self, batch: pa.RecordBatch) -> bytes:
        """The bytes that writing ``batch`` completed (possibly none)."""

    def finish(self) -> bytes:
        """The bytes that end the file."""


def encoder(format: ExportFormat) -> Encoder:
    if format == "parquet":
        return ParquetEncoder()
    if format == "csv":
        return CsvEncoder()
    return JsonEncoder()


class _Collected:
    """A write-only file that keeps what was written until it is taken (what pyarrow writes into)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._position = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


class ParquetEncoder:
    """A Parquet file, one row group per batch, zstd-compressed, with the table's schema."""

    def __init__(self) -> None:
        self._sink = _Collected()
        self._writer = pq.ParquetWriter(self._sink, SCHEMA, compression="zstd")

    def encode(self, batch: pa.RecordBatch) -> bytes:
        self._writer.write_batch(batch)
        return self._sink.take()

    def finish(self) -> bytes:
        self._writer.close()
        return self._sink.take()


class DayWriter:
    """A Parquet file on disk written batch by batch (a day of the partitioned copy); closing twice is fine."""

    def __init__(self, path: Path) -> None:
        self._writer = pq.ParquetWriter(path, SCHEMA, compression="zstd")
        self._open = True

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)

    def close(self) -> None:
        if self._open:
            self._open = False
            self._writer.close()


class CsvEncoder:
    """CSV with a header line; times as the API writes them, severity as text."""

    def __init__(self) -> None:
        self._sink = _Collected()
        self._writer: pa_csv.CSVWriter | None = None

    def encode(self, batch: pa.RecordBatch) -> bytes:
        printable = _printable(batch)
        if self._writer is None:
            self._writer = pa_csv.CSVWriter(self._sink, printable.schema)
        self._writer.write_batch(printable)
        return self._sink.take()

    def finish(self) -> bytes:
        if self._writer is None:  # no alerts: the header alone
            header = _printable(pa.RecordBatch.from_pylist([], schema=SCHEMA)).schema
            self._writer = pa_csv.CSVWriter(self._sink, header)
        self._writer.close()
        return self._sink.take()


def _printable(batch: pa.RecordBatch) -> pa.RecordBatch:
    columns, names = [], []
    for field, column in zip(batch.schema, batch.columns, strict=True):
        if pa.types.is_timestamp(field.type):
            column = _iso(column)
        elif pa.types.is_dictionary(field.type):
            column = column.cast(pa.string())
        columns.append(column)
        names.append(field.name)
    return pa.RecordBatch.from_arrays(columns, names=names)


def _iso(times: pa.Array) -> pa.Array:
    """Times as the API writes them (milliseconds, truncated as :func:`relay.clock.iso` does)."""
    return pc.strftime(pc.cast(times, pa.timestamp("ms", tz="UTC"), safe=False), format=ISO_MILLIS)


_JSON_COLUMNS: Final = (
    "id", "streamId", "deviceName", "severity", "message", "metadata", "timestamp", "ref", "frameTimestamp",
    "hasSnapshot", "reviewed", "falsePositive", "reviewedBy", "keep", "note",
)  # fmt: skip
"""What :class:`JsonEncoder` reads, besides the times, in the order of :func:`relay.representation.alert_json`
(with the stream's ``deviceName`` beside its id, which an export is read without)."""


class JsonEncoder:
    """A JSON array of alerts as ``GET /api/alerts`` lists them, and their stream's ``deviceName``, oldest first."""

    def __init__(self) -> None:
        self._started = False

    def encode(self, batch: pa.RecordBatch) -> bytes:
        if not batch.num_rows:
            return b""
        created = _iso(batch.column("createdAt"))
        reviewed_at = _iso(batch.column("reviewedAt"))
        items = []
        columns = [batch.column(name).to_pylist() for name in _JSON_COLUMNS]
        for (
            alert_id, stream_id, device_name, severity, message, metadata, timestamp, ref, frame_timestamp, snapshot,
            reviewed, false_positive, reviewed_by, keep, note,
        ), stored, reviewed_when in zip(zip(*columns, strict=True), created.to_pylist(), reviewed_at.to_pylist(),
                                        strict=True):  # fmt: skip
            item = {
                "id": alert_id,
                "streamId": stream_id,
                "deviceName": device_name,
                "severity": severity,
                "message": message,
                "metadata": orjson.Fragment(metadata),
                "timestamp": timestamp,
                "createdAt": stored,
                "hasSnapshot": snapshot,
                "reviewed": reviewed,
                "falsePositive": false_positive,
                "keep": keep,
            }
            if ref is not None:
                item["ref"] = ref
            if frame_timestamp is not None:
                item["frameTimestamp"] = frame_timestamp
            if reviewed_by is not None:
                item["reviewedBy"] = reviewed_by
                item["reviewedAt"] = reviewed_when
            if note is not None:
                item["note"] = note
            items.append(item)
        body = orjson.dumps(items)[1:-1]
        opening = b"," if self._started else b"["
        self._started = True
        return opening + body

    def finish(self) -> bytes:
        return b"]" if self._started else b"[]"
