"""Jobs that one relay node at a time runs, and the retention job's deletes.

:meth:`Jobs.claim` is the guard: a node that wants to run a job moves its
``ranAt`` forward in one conditional ``UPDATE``; on SQLite writers take turns on
the file, on PostgreSQL the row's lock makes a second node's statement see the
first one's new ``ranAt`` and match nothing.  Whoever's statement changed the
row runs the job; the others skip it until it is due again.

:meth:`Jobs.prune` deletes alerts stored before a moment, except those marked
``keep``, with their snapshots, a batch per transaction, so that a first
prune of a million alerts neither holds one huge transaction nor stops the
relay's writers for long.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Final

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relay.clock import utcnow
from relay.store.models import Alert, AlertSnapshot, JobRun, stored_day

PRUNE_BATCH: Final = 5000


@dataclass(frozen=True, slots=True)
class Pruned:
    """What a prune deleted: how many alerts, and the UTC days they were stored on (for the analytics copy)."""

    deleted: int
    days: list[date]


class Jobs:
    """Queries on ``job_run``, and the retention's deletes."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def claim(self, name: str, every: timedelta) -> bool:
        """Whether this caller is the one to run job ``name`` now: it last ran ``every`` or longer ago."""
        now = utcnow()
        async with self._sessions() as session:
            claimed = await session.scalar(
                update(JobRun)
                .where(and_(JobRun.name == name, JobRun.ran_at <= now - every))
                .values(ran_at=now)
                .returning(JobRun.name)
            )
            if claimed is None and await session.get(JobRun, name) is None:
                await session.execute(insert(JobRun).values(name=name, ran_at=now))
                claimed = name
            try:
                await session.commit()
            except IntegrityError:  # another node inserted the row a moment ago: its run
                return False
        return claimed is not None

    async def prune(self, before: datetime, *, batch: int = PRUNE_BATCH) -> Pruned:
        """Delete alerts stored before ``before`` that are not marked ``keep``, with their snapshots."""
        deleted = 0
        days: set[date] = set()
        while True:
            async with self._sessions() as session:
                day = stored_day(session.get_bind().dialect.name)
                rows = (
                    await session.execute(
                        select(Alert.seq, Alert.id, day)
                        .where(and_(Alert.created_at < before, Alert.keep.is_(False)))
                        .order_by(Alert.seq)
                        .limit(batch)
                    )
                ).all()
                if not rows:
                    break
                ids = [row[1] for row in rows]
                await session.execute(delete(AlertSnapshot).where(AlertSnapshot.alert_id.in_(ids)))
                await session.execute(delete(Alert).where(Alert.seq.in_([row[0] for row in rows])))
                await session.commit()
            deleted += len(rows)
            days.update(date.fromisoformat(row[2]) for row in rows)
            if len(rows) < batch:
                break
        return Pruned(deleted, sorted(days))
