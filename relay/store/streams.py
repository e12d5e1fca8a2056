"""Video streams: registration, ownership, status."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relay.clock import utcnow
from relay.identity.ids import new_id
from relay.store.models import Alert, AlertSnapshot, VideoStream, stored_day


class Streams:
    """Queries on ``video_stream``."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def register(self, user_id: str, device_name: str, device_type: str, metadata: dict[str, Any]) -> VideoStream:
        stream = VideoStream(
            id=new_id("stream"),
            user_id=user_id,
            device_name=device_name,
            device_type=device_type,
            status="offline",
            meta=metadata,
        )
        async with self._sessions() as session:
            session.add(stream)
            await session.commit()
        return stream

    async def for_user(self, user_id: str) -> list[VideoStream]:
        """The user's streams, oldest first."""
        async with self._sessions() as session:
            result = await session.scalars(
                select(VideoStream)
                .where(VideoStream.user_id == user_id)
                .order_by(VideoStream.created_at, VideoStream.id)
            )
            return list(result)

    async def get(self, stream_id: str) -> VideoStream | None:
        async with self._sessions() as session:
            return await session.get(VideoStream, stream_id)

    async def update(
        self, stream_id: str, user_id: str, *, device_name: str | None = None, metadata: dict[str, Any] | None = None
    ) -> VideoStream | None:
        """Rename the user's stream and/or replace its metadata; the stream as it is now (None: not theirs)."""
        values: dict[str, object] = {"updated_at": utcnow()}
        if device_name is not None:
            values["device_name"] = device_name
        if metadata is not None:
            values["meta"] = metadata
        async with self._sessions() as session:
            stream = await session.scalar(
                update(VideoStream)
                .where(and_(VideoStream.id == stream_id, VideoStream.user_id == user_id))
                .values(**values)
                .returning(VideoStream)
            )
            await session.commit()
            return stream

    async def delete(self, stream_id: str, user_id: str) -> list[date] | None:
        """Delete the user's stream with its alerts and their snapshots; the days (UTC) it had alerts on.

        None if there is no such stream of theirs.  The rows go by explicit
        statements rather than by trusting ``ON DELETE CASCADE``, so the result
        is the same on a SQLite connection opened without ``foreign_keys``.  The
        stream's row is locked first (the same lock :meth:`Alerts.add` takes),
        so an alert being stored for it either commits before and is deleted
        too, or finds the stream gone.
        """
        async with self._sessions() as session:
            locked = await session.scalar(
                update(VideoStream)
                .where(and_(VideoStream.id == stream_id, VideoStream.user_id == user_id))
                .values(last_alert_seq=VideoStream.last_alert_seq)
                .returning(VideoStream.id)
            )
            if locked is None:
                await session.rollback()
                return None
            day = stored_day(session.get_bind().dialect.name)
            stored_on = await session.scalars(select(day).where(Alert.stream_id == stream_id).distinct())
            days = sorted(date.fromisoformat(value) for value in stored_on)
            alert_ids = select(Alert.id).where(Alert.stream_id == stream_id)
            await session.execute(delete(AlertSnapshot).where(AlertSnapshot.alert_id.in_(alert_ids)))
            await session.execute(delete(Alert).where(Alert.stream_id == stream_id))
            await session.execute(delete(VideoStream).where(VideoStream.id == stream_id))
            await session.commit()
        return days

    async def existing(self, stream_ids: Iterable[str]) -> set[str]:
        """Which of these stream ids name a stream (a node checks the streams it carries after a broker outage)."""
        ids = list(stream_ids)
        found: set[str] = set()
        for start in range(0, len(ids), 500):
            async with self._sessions() as session:
                rows = await session.scalars(select(VideoStream.id).where(VideoStream.id.in_(ids[start : start + 500])))
                found.update(rows)
        return found

    async def device_names(self, stream_ids: Iterable[str]) -> dict[str, str]:
        """Device name by stream id, for labelling."""
        ids = list(stream_ids)
        if not ids:
            return {}
        async with self._sessions() as session:
            rows = await session.execute(select(VideoStream.id, VideoStream.device_name).where(VideoStream.id.in_(ids)))
            return {row.id: row.device_name for row in rows}

    async def owner(self, stream_id: str) -> str | None:
        """The id of the user who owns ``stream_id``, or None if there is no such stream."""
        async with self._sessions() as session:
            return await session.scalar(select(VideoStream.user_id).where(VideoStream.id == stream_id))

    async def set_status(self, stream_id: str, status: str, last_seen: datetime, node: str) -> bool:
        """Record a status change that ``node``'s producer connection caused; whether it took effect.

        ``online`` makes ``node`` the stream's producer node (a new registration
        takes over, wherever the old one was).  ``streaming`` and ``offline``
        change the stream only while ``node`` is still its producer node: an old
        connection of a phone that has registered again on another node since
        cannot take the stream from it.
        """
        query = update(VideoStream).where(VideoStream.id == stream_id)
        values: dict[str, object] = {"status": status, "last_seen": last_seen, "updated_at": utcnow()}
        if status == "online":
            values["producer_node"] = node
        else:
            query = query.where(or_(VideoStream.producer_node == node, VideoStream.producer_node.is_(None)))
            if status == "offline":
                values["producer_node"] = None
        async with self._sessions() as session:
            changed = await session.execute(query.values(**values).returning(VideoStream.id))
            took_effect = changed.first() is not None
            await session.commit()
        return took_effect

    async def producer_nodes(self) -> set[str]:
        """The nodes that streams not ``offline`` have their producer on."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(VideoStream.producer_node)
                .where(and_(VideoStream.status != "offline", VideoStream.producer_node.is_not(None)))
                .distinct()
            )
            return {node for node in rows if node is not None}

    async def release_node(self, node: str, last_seen: datetime) -> list[str]:
        """Take offline every stream whose producer was on ``node`` (a node that died); their ids."""
        async with self._sessions() as session:
            result = await session.execute(
                update(VideoStream)
                .where(and_(VideoStream.producer_node == node, VideoStream.status != "offline"))
                .values(status="offline", last_seen=last_seen, updated_at=utcnow(), producer_node=None)
                .returning(VideoStream.id)
            )
            released = list(result.scalars())
            await session.commit()
        return released

    async def touch(self, stream_ids: Iterable[str], last_seen: datetime) -> None:
        """Record that these streams were seen at ``last_seen`` (one statement for all)."""
        ids = list(stream_ids)
        if not ids:
            return
        async with self._sessions() as session:
            await session.execute(update(VideoStream).where(VideoStream.id.in_(ids)).values(last_seen=last_seen))
            await session.commit()

    async def reset_statuses(self, last_seen: datetime) -> int:
        """Set every stream that is not ``offline`` to ``offline``; returns how many.

        A single relay node calls this on start: whatever a crashed previous run
        left ``online`` or ``streaming`` has no producer any more.
        """
        async with self._sessions() as session:
            result = await session.execute(
                update(VideoStream)
                .where(VideoStream.status != "offline")
                .values(status="offline", last_seen=last_seen, updated_at=utcnow(), producer_node=None)
                .returning(VideoStream.id)
            )
            count = len(result.all())
            await session.commit()
            return count
