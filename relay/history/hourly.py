"""Hourly counts kept beside each day of the partitioned copy: what most named queries read instead of the alerts.

Five of the seven named queries (:mod:`relay.history.analytics`) only count
alerts per hour, stream, severity or object type.  At a month of a million
alerts the day files hold a million rows; their hourly counts by every field a
filter can name except the text and the confidence hold about 140,000, and
reading those instead halves those queries or better.  So every day file of the
copy gets, written with it, the counts of its alerts per

    hour (UTC, as hours since 1970) × userId × streamId × severity × objectType × reviewed × falsePositive

in ``FOLDER/_hourly/date=YYYY-MM-DD/counts.hourly`` (a folder whose name
starts with ``_``, which pyarrow's and pandas' dataset readers skip, so the
copy still reads as the alert table alone).  A filter that the counts cannot
answer exactly — a text search, a confidence range, a time range that does not
start and end on the hour — reads the day files instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

FOLDER: Final = "_hourly"
FILE: Final = "counts.hourly"
"""Not ``*.parquet`` (it is Parquet): ``DIR/**/*.parquet`` still reads the alert table alone, as the docs show."""
HOUR_US: Final = 3_600_000_000
KEYS: Final = ("hour", "userId", "streamId", "severity", "objectType", "reviewed", "falsePositive")
SCHEMA: Final = pa.schema(
    [
        ("hour", pa.int64()),
        ("userId", pa.string()),
        ("streamId", pa.string()),
        ("severity", pa.string()),
        ("objectType", pa.string()),
        ("reviewed", pa.bool_()),
        ("falsePositive", pa.bool_()),
        ("alerts", pa.int64()),
    ]
)


class HourlyCounts:
    """The counts of one day's alerts, added batch by batch as the day file is written (one batch in memory)."""

    def __init__(self) -> None:
        self._parts: list[pa.Table] = []

    def add(self, batch: pa.RecordBatch) -> None:
        """Count ``batch`` (of the alert table's schema) into the day's counts."""
        micros = pc.cast(batch.column("createdAt"), pa.int64())
        keyed = pa.table(
            {
                "hour": pc.divide(micros, HOUR_US),  # integer division; stored times are after 1970
                "userId": batch.column("userId"),
                "streamId": batch.column("streamId"),
                "severity": pc.cast(batch.column("severity"), pa.string()),
                "objectType": batch.column("objectType"),
                "reviewed": batch.column("reviewed"),
                "falsePositive": batch.column("falsePositive"),
            }
        )
        counted = keyed.group_by(list(KEYS), use_threads=False).aggregate([([], "count_all")])
        self._parts.append(counted.rename_columns(_named(counted.column_names)))

    def write(self, path: Path) -> None:
        """The day's counts into ``path`` (a part per batch summed, as one table of :data:`SCHEMA`)."""
        if self._parts:
            parts = pa.concat_tables(self._parts)
            summed = parts.group_by(list(KEYS), use_threads=False).aggregate([("alerts", "sum")])
            table = summed.rename_columns(_named(summed.column_names)).select(SCHEMA.names).cast(SCHEMA)
        else:
            table = SCHEMA.empty_table()
        pq.write_table(table, path, compression="zstd")


def _named(columns: list[str]) -> list[str]:
    """pyarrow names an aggregate ``count_all`` or ``alerts_sum``; the counts are ``alerts``."""
    return ["alerts" if column in ("count_all", "alerts_sum") else column for column in columns]


def day_folder(folder: Path, day_partition: str) -> Path:
    """Where the counts of the day folder named ``day_partition`` (``date=…``) go."""
    return folder / FOLDER / day_partition
