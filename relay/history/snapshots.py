"""The alerts' snapshots as files: ``relay export --snapshots DIR``.

One JPEG per alert that has one, named by the alert's id (``alert_….jpg``), so
that a row of any export finds its picture by its ``id``.  Read in batches by
keyset on ``seq`` like every export (memory is one batch of pictures), written
each to a ``.partial`` file renamed when whole.  A picture never changes once
stored, so a file already there is not written again: a second run into the
same folder writes only the new ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from sqlalchemy import Engine, func, select

from relay.store import AlertFilter
from relay.store.alerts import matching
from relay.store.models import Alert, AlertSnapshot

PICTURES_PER_BATCH: Final = 200
"""Snapshots read per query: at most a few hundred KB each, so a batch stays within tens of MB."""


@dataclass(frozen=True)
class Written:
    """What a run did: pictures written, and those already in the folder."""

    written: int
    already_there: int


def count(engine: Engine, where: AlertFilter) -> int:
    """How many alerts ``where`` selects have a snapshot (a progress bar's total)."""
    with engine.connect() as connection:
        selected = matching(where).where(Alert.has_snapshot.is_(True)).subquery()
        return int(connection.scalar(select(func.count()).select_from(selected)) or 0)


def write(
    engine: Engine, where: AlertFilter, folder: Path, *, progress: Callable[[int], object] | None = None
) -> Written:
    """Write the snapshot of every alert ``where`` selects into ``folder`` (created if need be)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = already = 0
    after = 0
    pictures = (
        matching(where)
        .join(AlertSnapshot, AlertSnapshot.alert_id == Alert.id)
        .with_only_columns(Alert.seq, Alert.id, AlertSnapshot.jpeg)
        .order_by(Alert.seq)
        .limit(PICTURES_PER_BATCH)
    )
    with engine.connect() as connection:
        while True:
            rows = connection.execute(pictures.where(Alert.seq > after)).all()
            for _, alert_id, jpeg in rows:
                target = folder / f"{alert_id}.jpg"
                if target.exists():
                    already += 1
                else:
                    partial = target.with_name(target.name + ".partial")
                    partial.write_bytes(jpeg)
                    partial.replace(target)
                    written += 1
            if progress is not None and rows:
                progress(len(rows))
            if len(rows) < PICTURES_PER_BATCH:
                return Written(written, already)
            after = rows[-1][0]
