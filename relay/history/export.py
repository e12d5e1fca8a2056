"""Alert history as a table and as Parquet, CSV or JSON files.

One table shape serves the REST export, ``relay export`` and the workbench's
analytics: the alert's own fields, plus the well-known metadata keys as columns
of their own (``confidence``, ``objectType``, ``locationX``, ``locationY``) so
that DuckDB and pandas can filter on them without parsing JSON, plus the whole
metadata as JSON text so nothing is lost.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import orjson

from relay.representation import alert_json
from relay.store import AlertFilter, Alerts
from relay.store.models import Alert

if TYPE_CHECKING:
    import pandas as pd

ExportFormat = Literal["parquet", "csv", "json"]
FORMATS: Final = ("parquet", "csv", "json")
MEDIA_TYPES: Final = {
    "parquet": "application/vnd.apache.parquet",
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
}
COLUMNS: Final = [
    "id",
    "streamId",
    "severity",
    "message",
    "timestamp",
    "createdAt",
    "ref",
    "confidence",
    "objectType",
    "locationX",
    "locationY",
    "metadata",
]


async def collect(alerts: Alerts, where: AlertFilter, progress: Callable[[int], None] | None = None) -> list[Alert]:
    """Every alert matching ``where``, oldest first; ``progress`` is told the count so far."""
    rows: list[Alert] = []
    async for batch in alerts.iterate(where):
        rows.extend(batch)
        if progress is not None:
            progress(len(rows))
    return rows


def to_frame(rows: list[Alert]) -> pd.DataFrame:
    """The export table: one row per alert, columns as in :data:`COLUMNS`."""
    import pandas as pd  # imported here: a second of start-up the relay and CLI need not pay

    records = []
    for alert in rows:
        meta: dict[str, Any] = alert.meta or {}
        location = meta.get("location")
        if not isinstance(location, dict):
            location = {}
        records.append(
            {
                "id": alert.id,
                "streamId": alert.stream_id,
                "severity": alert.severity,
                "message": alert.message,
                "timestamp": alert.timestamp,
                "createdAt": alert.created_at,
                "ref": alert.ref,
                "confidence": meta.get("confidence"),
                "objectType": meta.get("objectType"),
                "locationX": location.get("x"),
                "locationY": location.get("y"),
                "metadata": orjson.dumps(meta).decode(),
            }
        )
    frame = pd.DataFrame.from_records(records, columns=COLUMNS)
    frame["timestamp"] = frame["timestamp"].astype("int64")
    frame["createdAt"] = pd.to_datetime(frame["createdAt"], utc=True)
    frame["confidence"] = frame["confidence"].astype("float64")
    frame["locationX"] = frame["locationX"].astype("float64")
    frame["locationY"] = frame["locationY"].astype("float64")
    for column in ("id", "streamId", "severity", "message", "ref", "objectType", "metadata"):
        frame[column] = frame[column].astype("string")
    return frame


def encode(rows: list[Alert], format: ExportFormat) -> bytes:
    """The file's bytes.  JSON is an array of alerts exactly as ``GET /api/alerts`` shows them."""
    if format == "json":
        return orjson.dumps([alert_json(alert) for alert in rows])
    frame = to_frame(rows)
    buffer = io.BytesIO()
    if format == "parquet":
        frame.to_parquet(buffer, index=False)
    else:
        frame.to_csv(buffer, index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ")
    return buffer.getvalue()


def write(rows: list[Alert], format: ExportFormat, path: Path) -> None:
    """Write the export to ``path`` atomically (a partial file never has the final name)."""
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(encode(rows, format))
    partial.replace(path)
