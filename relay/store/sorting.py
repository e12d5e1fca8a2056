"""Orders of alert history other than storage order, for a reader who sorts by a column.

A sorted page is read by keyset, as storage-order pages are: the rows come
ordered by ``(key, seq)`` and the next page starts after the last row's pair,
so a page is the next ``limit`` rows of the *whole* filtered history in that
order, whatever was read before, and rows that arrive meanwhile do not shift
later pages by one.  ``seq`` breaks ties, so the order is total.

Each key is an expression that is never NULL (a row comparison with a NULL in
it is neither true nor false, and the row would be skipped by every cursor):
an alert whose metadata has no numeric confidence sorts below every
confidence, one with no object type below every type.  Severity and review
state sort by their rank, not their spelling.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, case, func, select
from sqlalchemy.sql.elements import ColumnElement

from relay.store.metadata_values import MetadataNumber
from relay.store.models import Alert, VideoStream
from relay.wire import SEVERITIES

NO_CONFIDENCE = -1.0
"""Where an alert without a numeric ``confidence`` sorts: below every confidence a client may send (0..1)."""


class SortKey(enum.StrEnum):
    """What history can be sorted by; ``STORED`` is storage order (newest first is the default of every reader)."""

    STORED = "stored"
    STREAM = "stream"
    SEVERITY = "severity"
    MESSAGE = "message"
    OBJECT_TYPE = "objectType"
    CONFIDENCE = "confidence"
    REVIEW = "review"


@dataclass(frozen=True, slots=True)
class Sort:
    """An order of history: by ``key``, largest first when ``descending``, ties by storage order the same way."""

    key: SortKey = SortKey.STORED
    descending: bool = True


Cursor = tuple[Any, int]
"""Where a sorted page ends: the last row's key value and its ``seq``."""


def sort_expression(key: SortKey) -> ColumnElement[Any]:
    """The never-NULL value that ``key`` orders alerts by."""
    if key is SortKey.STORED:
        return Alert.seq.expression
    if key is SortKey.STREAM:
        name = select(VideoStream.device_name).where(VideoStream.id == Alert.stream_id).scalar_subquery()
        return func.coalesce(name, "")
    if key is SortKey.SEVERITY:
        ranks = {severity: rank for rank, severity in enumerate(SEVERITIES, start=1)}
        return case(ranks, value=Alert.severity, else_=0).cast(Integer)
    if key is SortKey.MESSAGE:
        return Alert.message.expression
    if key is SortKey.OBJECT_TYPE:
        return func.coalesce(Alert.object_type, "")
    if key is SortKey.CONFIDENCE:
        return func.coalesce(MetadataNumber("confidence"), NO_CONFIDENCE)
    return case((Alert.false_positive.is_(True), 2), (Alert.reviewed.is_(True), 1), else_=0)
