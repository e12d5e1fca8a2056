"""Alerts: storing once per ``ref``, paging newest first, replaying oldest first.

Every reader of alert history (``GET /api/alerts``, the export, the workbench's
history table) filters through :class:`AlertFilter` and :meth:`Alerts.page`, so
they cannot disagree about which alerts match.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relay.identity.ids import new_id
from relay.store.models import Alert, VideoStream
from relay.wire import AlertIn


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """Which alerts a reader wants; every field is optional.

    ``user_id`` limits to that user's streams (None: every user's, for the CLI).
    ``since`` is inclusive and ``until`` exclusive, both on ``createdAt``.
    ``text`` matches anywhere in the message, case-insensitively.
    """

    user_id: str | None = None
    stream_ids: Sequence[str] = ()
    severities: Sequence[str] = ()
    since: datetime | None = None
    until: datetime | None = None
    object_type: str | None = None
    text: str | None = None


@dataclass(frozen=True, slots=True)
class StoredAlert:
    """The outcome of :meth:`Alerts.add`: the alert, and whether it is new."""

    alert: Alert
    created: bool


class Alerts:
    """Queries on ``alert``."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def add(self, alert_in: AlertIn) -> StoredAlert:
        """Store an alert, unless one with the same ``ref`` is already stored for its stream.

        The check and the unique constraint on ``(streamId, ref)`` together make
        a resent alert land once, even when two copies race.
        """
        async with self._sessions() as session:
            if alert_in.ref is not None:
                existing = await session.scalar(_by_ref(alert_in.stream_id, alert_in.ref))
                if existing is not None:
                    return StoredAlert(existing, created=False)
            alert = Alert(
                id=new_id("alert"),
                stream_id=alert_in.stream_id,
                severity=alert_in.severity,
                message=alert_in.message,
                meta=alert_in.metadata,
                timestamp=alert_in.timestamp,
                ref=alert_in.ref,
            )
            session.add(alert)
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
                if alert_in.ref is None:
                    raise
                existing = await session.scalar(_by_ref(alert_in.stream_id, alert_in.ref))
                if existing is None:
                    raise
                return StoredAlert(existing, created=False)
            return StoredAlert(alert, created=True)

    async def page(self, where: AlertFilter, *, limit: int, before_seq: int | None = None) -> list[Alert]:
        """Up to ``limit`` matching alerts, newest first, older than ``before_seq`` if given."""
        query = _filtered(where).order_by(Alert.seq.desc()).limit(limit)
        if before_seq is not None:
            query = query.where(Alert.seq < before_seq)
        async with self._sessions() as session:
            return list(await session.scalars(query))

    async def count(self, where: AlertFilter) -> int:
        query = _filtered(where).with_only_columns(func.count()).order_by(None)
        async with self._sessions() as session:
            return int(await session.scalar(query) or 0)

    async def iterate(self, where: AlertFilter, *, batch: int = 1000) -> AsyncIterator[list[Alert]]:
        """Every matching alert, oldest first, in batches (for exports of any size)."""
        after = 0
        while True:
            query = _filtered(where).where(Alert.seq > after).order_by(Alert.seq).limit(batch)
            async with self._sessions() as session:
                rows = list(await session.scalars(query))
            if not rows:
                return
            yield rows
            after = rows[-1].seq

    async def seq_of(self, stream_id: str, alert_id: str) -> int | None:
        """The storage sequence of an alert of ``stream_id``, or None if there is none such."""
        async with self._sessions() as session:
            return await session.scalar(
                select(Alert.seq).where(and_(Alert.id == alert_id, Alert.stream_id == stream_id))
            )

    async def after(self, stream_id: str, after_seq: int, *, limit: int) -> list[Alert]:
        """Alerts of one stream stored after ``after_seq``, oldest first (for replay)."""
        async with self._sessions() as session:
            return list(
                await session.scalars(
                    select(Alert)
                    .where(and_(Alert.stream_id == stream_id, Alert.seq > after_seq))
                    .order_by(Alert.seq)
                    .limit(limit)
                )
            )


def _by_ref(stream_id: str, ref: str) -> Select[Alert]:
    return select(Alert).where(and_(Alert.stream_id == stream_id, Alert.ref == ref))


def _filtered(where: AlertFilter) -> Select[Alert]:
    query = select(Alert)
    if where.user_id is not None:
        query = query.join(VideoStream, VideoStream.id == Alert.stream_id).where(VideoStream.user_id == where.user_id)
    if where.stream_ids:
        query = query.where(Alert.stream_id.in_(list(where.stream_ids)))
    if where.severities:
        query = query.where(Alert.severity.in_(list(where.severities)))
    if where.since is not None:
        query = query.where(Alert.created_at >= where.since)
    if where.until is not None:
        query = query.where(Alert.created_at < where.until)
    if where.object_type:
        query = query.where(Alert.meta["objectType"].as_string() == where.object_type)
    if where.text:
        pattern = "%" + where.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(Alert.message.ilike(pattern, escape="\\"))
    return query
