"""Alerts: storing once per ``ref``, paging newest first, replaying oldest first.

Every reader of alert history (``GET /api/alerts``, the export, the workbench's
history table) filters through :class:`AlertFilter` and :meth:`Alerts.page`, so
they cannot disagree about which alerts match.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, func, select, update
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


class UnknownStream(LookupError):
    """An alert for a stream that does not exist (it may have been deleted a moment ago)."""


@dataclass(frozen=True, slots=True)
class StoredAlert:
    """The outcome of :meth:`Alerts.add`: the alert, and whether it is new."""

    alert: Alert
    created: bool


class Alerts:
    """Queries on ``alert``."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def add(self, alert_in: AlertIn, *, created_at: datetime | None = None) -> StoredAlert:
        """Store an alert, unless one with the same ``ref`` is already stored for its stream.

        ``created_at`` back-dates it (an import of history); by default it is now.

        The stream's row is locked first (its ``lastAlertSeq`` is counted up),
        so that two nodes storing alerts of one stream take turns: each alert
        gets the next ``streamSeq`` and the alerts commit in that order, which
        is what lets a replay by ``sinceAlertId`` miss none.  Under the lock
        the ``ref`` check cannot race either; the unique constraint on
        ``(streamId, ref)`` stays as the last word.  Raises
        :class:`UnknownStream` for a stream that does not exist (any more).
        """
        async with self._sessions() as session:
            if alert_in.ref is not None:  # a resend, most likely: confirmed without taking the lock
                existing = await session.scalar(_by_ref(alert_in.stream_id, alert_in.ref))
                if existing is not None:
                    return StoredAlert(existing, created=False)
            stream_seq = await session.scalar(
                update(VideoStream)
                .where(VideoStream.id == alert_in.stream_id)
                .values(last_alert_seq=VideoStream.last_alert_seq + 1)
                .returning(VideoStream.last_alert_seq)
            )
            if stream_seq is None:
                raise UnknownStream(alert_in.stream_id)
            if alert_in.ref is not None:  # stored by another node while this one waited for the lock?
                existing = await session.scalar(_by_ref(alert_in.stream_id, alert_in.ref))
                if existing is not None:
                    session.expunge(existing)  # keep what was read: the rollback expires what the session holds
                    await session.rollback()  # gives the number back
                    return StoredAlert(existing, created=False)
            alert = Alert(
                id=new_id("alert"),
                stream_id=alert_in.stream_id,
                stream_seq=stream_seq,
                severity=alert_in.severity,
                message=alert_in.message,
                meta=alert_in.metadata,
                timestamp=alert_in.timestamp,
                ref=alert_in.ref,
            )
            if created_at is not None:
                alert.created_at = created_at
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

    async def stream_seq_of(self, stream_id: str, alert_id: str) -> int | None:
        """The place of an alert among the alerts of ``stream_id``, or None if there is none such."""
        async with self._sessions() as session:
            return await session.scalar(
                select(Alert.stream_seq).where(and_(Alert.id == alert_id, Alert.stream_id == stream_id))
            )

    async def after(self, stream_id: str, after_stream_seq: int, *, limit: int) -> list[Alert]:
        """Alerts of one stream that came after ``after_stream_seq`` in it, in its order (for replay)."""
        async with self._sessions() as session:
            return list(
                await session.scalars(
                    select(Alert)
                    .where(and_(Alert.stream_id == stream_id, Alert.stream_seq > after_stream_seq))
                    .order_by(Alert.stream_seq)
                    .limit(limit)
                )
            )


def _by_ref(stream_id: str, ref: str) -> Select[Alert]:
    return select(Alert).where(and_(Alert.stream_id == stream_id, Alert.ref == ref))


def matching(where: AlertFilter, *, with_stream: bool = False) -> Select[Alert]:
    """The alerts ``where`` selects, for readers that pick their own columns (``with_only_columns``).

    ``with_stream`` joins each alert's ``video_stream`` row in any case (for its owner and device name).
    """
    query = _filtered(where)
    if with_stream and where.user_id is None:
        query = query.join(VideoStream, VideoStream.id == Alert.stream_id)
    return query


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
