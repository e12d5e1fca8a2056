"""Alerts: storing once per ``ref``, paging newest first, replaying oldest first.

Every reader of alert history (``GET /api/alerts``, the export, the workbench's
history table) filters through :class:`AlertFilter` and ``_filtered``, so
they cannot disagree about which alerts match.

Reading history stays fast at millions of alerts because each filter has an
index that yields its alerts in storage order (see :mod:`relay.store.models`),
and a text filter has a trigram index (:mod:`relay.store.search`): on SQLite
the FTS5 table is joined in and *drives* the query, newest first by its rowid
(which is ``seq``), so a page stops after ``limit`` matches instead of
collecting every match and sorting; on PostgreSQL the planner picks the GIN
index for the same ``ILIKE`` when it is selective.  A text that no index can
serve (fewer than three letters or digits in a row, or a database without the
index), or a text with another filter that may reject its matches, is what
:meth:`Alerts.search` bounds; a time window of up to two days is read from its
time index, whatever else filters it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import ColumnElement, Select, and_, func, literal_column, or_, select, true, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relay.clock import utcnow
from relay.identity.ids import new_id
from relay.store.metadata_values import MetadataNumber
from relay.store.models import OBJECT_TYPE_CHARS, Alert, AlertSnapshot, VideoStream
from relay.store.search import ALERT_TEXT, TextIndex, fts_pattern, usable_for
from relay.store.sorting import Cursor, Sort, SortKey, sort_expression
from relay.wire import AlertIn

SCAN_BUDGET = 100_000
"""How far back (in ``seq``) one :meth:`Alerts.search` call looks for a text it bounds.

About 70 ms of scanning on SQLite and PostgreSQL here for a text no index serves, 25–55 ms through the
text index for a text with another filter; see ``benchmarks/RESULTS.md``.
"""


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """Which alerts a reader wants; every field is optional.

    ``user_id`` limits to that user's streams (None: every user's, for the CLI).
    ``since`` is inclusive and ``until`` exclusive, both on ``createdAt``.
    ``text`` matches anywhere in the message, case-insensitively.
    ``min_confidence`` and ``max_confidence`` are inclusive bounds on the metadata's
    numeric ``confidence``; with either, an alert without one does not match.
    """

    user_id: str | None = None
    stream_ids: Sequence[str] = ()
    severities: Sequence[str] = ()
    since: datetime | None = None
    until: datetime | None = None
    object_type: str | None = None
    text: str | None = None
    reviewed: bool | None = None
    false_positive: bool | None = None
    min_confidence: float | None = None
    max_confidence: float | None = None


MAX_REVIEWED_PER_CALL = 5000
"""Alerts one batch review (``POST /api/alerts/review``, the workbench) changes at most: each change is
sent to every dashboard of its stream, and a dashboard holds at most RELAY_MAX_QUEUED_MESSAGES in flight."""


@dataclass(frozen=True, slots=True)
class Review:
    """What a review changes; None leaves a field as it is.

    Marking an alert a false positive reviews it; changing ``reviewed`` or
    ``false_positive`` records who (``by``) and when.
    """

    by: str
    reviewed: bool | None = None
    false_positive: bool | None = None
    keep: bool | None = None
    note: str | None = None
    clear_note: bool = False

    def values(self, now: datetime) -> dict[str, object]:
        """The columns to set (as ``update().values`` takes them)."""
        values: dict[str, object] = {}
        reviewed = True if self.false_positive else self.reviewed
        if reviewed is not None:
            values["reviewed"] = reviewed
        if self.false_positive is not None:
            values["false_positive"] = self.false_positive
        if values:
            values.update(reviewed_by=self.by, reviewed_at=now)
        if self.keep is not None:
            values["keep"] = self.keep
        if self.note is not None or self.clear_note:
            values["note"] = self.note
        return values


@dataclass(frozen=True, slots=True)
class Page:
    """A page of history, newest first, and where the next one starts.

    ``next_before`` is the ``seq`` to read below for more (None: nothing older
    matches).  A page of a bounded search may hold fewer alerts than asked, even
    none, and still have one.
    """

    alerts: list[Alert]
    next_before: int | None


@dataclass(frozen=True, slots=True)
class SortedPage:
    """A page of history in a :class:`~relay.store.sorting.Sort`'s order, and where the next one starts.

    ``next_after`` is the cursor to read after for more (None: nothing further matches).
    """

    alerts: list[Alert]
    next_after: Cursor | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The frame an alert is about: its JPEG and its ``timestamp``."""

    jpeg: bytes
    timestamp: int


class UnknownStream(LookupError):
    """An alert for a stream that does not exist (it may have been deleted a moment ago)."""


@dataclass(frozen=True, slots=True)
class StoredAlert:
    """The outcome of :meth:`Alerts.add`: the alert, and whether it is new."""

    alert: Alert
    created: bool


class Alerts:
    """Queries on ``alert``."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], text_index: TextIndex = TextIndex.NONE, *, dialect: str = ""
    ) -> None:
        self._sessions = sessions
        self._text_index = text_index
        self._dialect = dialect

    async def add(
        self, alert_in: AlertIn, *, created_at: datetime | None = None, snapshot: Snapshot | None = None
    ) -> StoredAlert:
        """Store an alert, unless one with the same ``ref`` is already stored for its stream.

        ``created_at`` back-dates it (an import of history); by default it is now.
        ``snapshot`` (the frame it is about) is stored in the same transaction:
        when the alert is confirmed, so is its picture.

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
                frame_timestamp=alert_in.frame_timestamp,
                has_snapshot=snapshot is not None,
            )
            if created_at is not None:
                alert.created_at = created_at
            session.add(alert)
            if snapshot is not None:
                session.add(AlertSnapshot(alert_id=alert.id, jpeg=snapshot.jpeg, frame_timestamp=snapshot.timestamp))
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
        if _narrow_window(where):
            query = _time_window_page(_filtered(where), limit, before_seq)
        else:
            query, order = self._ordered(where)
            query = query.order_by(order.desc()).limit(limit)
            if before_seq is not None:
                query = query.where(order < before_seq)
        async with self._sessions() as session:
            return list(await session.scalars(query))

    async def sorted_page(
        self, where: AlertFilter, sort: Sort, *, limit: int, after: Cursor | None = None
    ) -> SortedPage:
        """Up to ``limit`` matching alerts in ``sort``'s order over the whole filtered history, after ``after``.

        Sorting by anything but storage order reads every matching alert (no index
        holds a metadata key or a rank), so it costs what a count costs, not a page.
        """
        query, order = self._ordered(where)
        ascending = not sort.descending
        if sort.key is SortKey.STORED:
            key: ColumnElement[Any] = order
            if after is not None:
                query = query.where(order > after[1] if ascending else order < after[1])
            ordering = [order.asc() if ascending else order.desc()]
        else:
            key = sort_expression(sort.key)
            if after is not None:
                position, start = tuple_(key, order), tuple_(*after)
                query = query.where(position > start if ascending else position < start)
            ordering = [key.asc(), order.asc()] if ascending else [key.desc(), order.desc()]
        keyed = query.add_columns(key, order).order_by(*ordering).limit(limit + 1)
        async with self._sessions() as session:
            rows: list[Any] = list((await session.execute(keyed)).all())
        alerts = [row[0] for row in rows[:limit]]
        last = rows[limit - 1] if len(rows) > limit else None
        return SortedPage(alerts, (last[1], last[2]) if last is not None else None)

    async def newest_seq(self, where: AlertFilter) -> int:
        """The storage position of the newest alert ``where`` selects (0: none), to count newer ones from."""
        query, order = self._ordered(where)
        async with self._sessions() as session:
            return int(await session.scalar(query.with_only_columns(func.max(order)).order_by(None)) or 0)

    async def search(self, where: AlertFilter, *, limit: int, before_seq: int | None = None) -> Page:
        """A page of ``GET /api/alerts``: :meth:`page`, except that a text search :meth:`_bounded` selects is
        bounded.

        Such a search would otherwise read every alert when little or nothing
        matches: a text no index serves reads the whole table, and a text the
        index serves but another filter rejects (``q=car&objectType=person``)
        has the index yield every match only to reject it.  It looks at the
        :data:`SCAN_BUDGET` alerts below ``before_seq`` (the newest, at first),
        through the text index where it serves the text, and answers what it
        found there, with the place to go on from if it found fewer than ``limit``.
        """
        if not self._bounded(where):
            rows = await self.page(where, limit=limit + 1, before_seq=before_seq)
            return Page(rows[:limit], rows[limit - 1].seq if len(rows) > limit else None)
        query, order = self._ordered(where)
        async with self._sessions() as session:
            if before_seq is None:
                newest = await session.scalar(select(func.max(Alert.seq)))
                if newest is None:
                    return Page([], None)
                before_seq = newest + 1
            lowest = before_seq - SCAN_BUDGET
            query = query.where(order < before_seq).order_by(order.desc()).limit(limit + 1)
            if lowest > 1:
                query = query.where(order >= lowest)
            rows = list(await session.scalars(query))
        if len(rows) > limit:
            return Page(rows[:limit], rows[limit - 1].seq)
        return Page(rows, lowest if lowest > 1 else None)

    async def count(self, where: AlertFilter, *, after_seq: int | None = None) -> int:
        """How many alerts ``where`` selects (stored after ``after_seq``, if given: "N new alerts")."""
        query, order = self._ordered(where)
        if after_seq is not None:
            query = query.where(order > after_seq)
        counted = query.with_only_columns(func.count(), maintain_column_froms=True).order_by(None)
        async with self._sessions() as session:
            return int(await session.scalar(counted) or 0)

    async def iterate(self, where: AlertFilter, *, batch: int = 1000) -> AsyncIterator[list[Alert]]:
        """Every matching alert, oldest first, in batches (for exports of any size)."""
        after = 0
        query, order = self._ordered(where)
        while True:
            async with self._sessions() as session:
                rows = list(await session.scalars(query.where(order > after).order_by(order).limit(batch)))
            if not rows:
                return
            yield rows
            after = rows[-1].seq

    def _bounded(self, where: AlertFilter) -> bool:
        """Whether :meth:`search` must bound this filter's search: a text that no index serves, or a text
        with another filter that may reject its matches (a narrow time window excepted: :meth:`page`
        reads all of it from its time index)."""
        if not where.text or _narrow_window(where):
            return False
        unindexed = self._text_index is TextIndex.NONE or not usable_for(where.text)
        return unindexed or _narrowed_beyond_text(where)

    def _ordered(self, where: AlertFilter) -> tuple[Select[Alert], ColumnElement[int]]:
        """The filter's query, and the column that puts it in storage order.

        That column is ``seq``, except on SQLite with a text the FTS5 table can
        serve: the table is joined in and its rowid (the same number) orders
        the query, which is what lets SQLite read the matches from the index
        newest first and stop after a page, rather than collect and sort them.
        SQLite takes that order once it has statistics (``relay.store.statistics``);
        without, it guesses that another index of ``alert`` yields a few rows and
        probes the FTS5 table once per row of it instead.
        """
        query = _filtered(where)
        if where.text and self._text_index is TextIndex.FTS5 and usable_for(where.text):
            pattern = fts_pattern(where.text)
            query = query.join(ALERT_TEXT, ALERT_TEXT.c.rowid == Alert.seq).where(ALERT_TEXT.c.message.like(pattern))
            return query, ALERT_TEXT.c.rowid
        return query, Alert.seq.expression

    async def get(self, alert_id: str, user_id: str | None) -> Alert | None:
        """The alert, if it exists and is of ``user_id``'s streams (None: anyone's)."""
        async with self._sessions() as session:
            return await session.scalar(_filtered(AlertFilter(user_id=user_id)).where(Alert.id == alert_id))

    async def snapshot(self, alert_id: str, user_id: str) -> bytes | None:
        """The JPEG stored with the alert, if there is one and the alert is of ``user_id``'s streams."""
        owned = _filtered(AlertFilter(user_id=user_id)).where(Alert.id == alert_id).with_only_columns(Alert.id)
        async with self._sessions() as session:
            return await session.scalar(
                select(AlertSnapshot.jpeg).where(AlertSnapshot.alert_id.in_(owned.scalar_subquery()))
            )

    async def review(self, alert_id: str, user_id: str, review: Review) -> Alert | None:
        """Apply ``review`` to one of ``user_id``'s alerts; the alert as it is now (None: no such alert of theirs)."""
        async with self._sessions() as session:
            owned = _filtered(AlertFilter(user_id=user_id)).where(Alert.id == alert_id)
            alert = await session.scalar(owned.with_for_update())
            if alert is None:
                return None
            for name, value in review.values(utcnow()).items():
                setattr(alert, name, value)
            await session.commit()
            return alert

    async def review_matching(
        self, where: AlertFilter, review: Review, *, limit: int, ids: Sequence[str] | None = None
    ) -> tuple[list[Alert], bool]:
        """Apply ``review`` to up to ``limit`` alerts ``where`` selects (and, given ``ids``, of those
        ids) that it would change, newest first.

        Returns the changed alerts and whether more would have changed.
        """
        values = review.values(utcnow())
        if not values:
            return [], False
        changing = _filtered(where).where(_would_change(values))
        if ids is not None:
            changing = changing.where(Alert.id.in_(list(ids)))
        changing = changing.order_by(Alert.seq.desc()).limit(limit + 1)
        async with self._sessions() as session:
            ids = list(await session.scalars(changing.with_only_columns(Alert.id)))
            chosen, more = ids[:limit], len(ids) > limit
            if not chosen:
                return [], False
            await session.execute(update(Alert).where(Alert.id.in_(chosen)).values(**values))
            await session.commit()
            changed = list(await session.scalars(select(Alert).where(Alert.id.in_(chosen)).order_by(Alert.seq)))
        return changed, more

    async def unreviewed(self, user_id: str) -> int:
        """How many of ``user_id``'s alerts nobody has reviewed (the workbench's counter)."""
        return await self.count(AlertFilter(user_id=user_id, reviewed=False))

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
    if with_stream:
        query = query.join(VideoStream, VideoStream.id == Alert.stream_id)
    return query


NARROW_WINDOW: Final = timedelta(days=2)
"""A time window up to this long is paged from its time index (:func:`_time_window_page`); a wider one
(sorting all of its ``seq`` would cost more than walking the primary key down) as any other."""


def _narrow_window(where: AlertFilter) -> bool:
    """A time window of at most :data:`NARROW_WINDOW`, whatever else filters it."""
    if where.since is None or where.until is None:
        return False
    return where.until - where.since <= NARROW_WINDOW


def _narrowed_beyond_text(where: AlertFilter) -> bool:
    """Whether anything but the user and the text narrows ``where``: a filter that the text's matches may fail."""
    return bool(
        where.stream_ids
        or where.severities
        or where.since is not None
        or where.until is not None
        or where.object_type
        or where.reviewed is not None
        or where.false_positive is not None
        or where.min_confidence is not None
        or where.max_confidence is not None
    )


def _time_window_page(query: Select[Alert], limit: int, before_seq: int | None) -> Select[Alert]:
    """A page of a time window: the window's ``seq`` read from the time index and sorted, then ``limit``
    alerts fetched by them.

    Ordered by ``seq`` itself, both databases walk an index in ``seq`` order down from the cursor and test
    each alert: the primary key, or on SQLite the object type's or the stream's ``(…, seq)`` index when
    the filter has one.  A page with fewer than ``limit`` left (a window's last) then read every alert
    older than the window, to the table's start (68–195 ms at 1M; ``benchmarks/history_rest.py``).
    ``seq + 0``, in the order and the cursor, is no index's order or key, so the window's time index is
    the cheapest way in; and sorting only ``seq`` (not whole rows) before fetching the page's alerts made
    page 1 of a day of 34,000 alerts 46 → 10 ms on SQLite.
    """
    unindexed = Alert.seq + literal_column("0")
    seqs = query.with_only_columns(Alert.seq)
    if before_seq is not None:
        seqs = seqs.where(unindexed < before_seq)
    chosen = seqs.order_by(unindexed.desc()).limit(limit)
    return select(Alert).where(Alert.seq.in_(chosen.scalar_subquery())).order_by(Alert.seq.desc())


def _filtered(where: AlertFilter) -> Select[Alert]:
    """The alerts ``where`` selects, as ``select(Alert)``: every reader's filter, exactly.

    The user's streams are a subquery, not a join: a join lets SQLite start at
    the streams and read a time window's index once per stream (ten times the
    work at ten streams); with ``IN`` the alert's own index leads.  An object
    type up to :data:`~relay.store.models.OBJECT_TYPE_CHARS` long is looked up
    in the indexed ``objectType`` column; a longer one can only be in the
    metadata (no REST filter is that long).
    """
    query = select(Alert)
    if where.user_id is not None:
        query = query.where(Alert.stream_id.in_(select(VideoStream.id).where(VideoStream.user_id == where.user_id)))
    if where.stream_ids:
        query = query.where(Alert.stream_id.in_(list(where.stream_ids)))
    if where.severities:
        query = query.where(Alert.severity.in_(list(where.severities)))
    if where.since is not None:
        query = query.where(Alert.created_at >= where.since)
    if where.until is not None:
        query = query.where(Alert.created_at < where.until)
    if where.object_type and len(where.object_type) <= OBJECT_TYPE_CHARS:
        query = query.where(Alert.object_type == where.object_type)
    elif where.object_type:
        query = query.where(Alert.meta["objectType"].as_string() == where.object_type)
    if where.text:
        pattern = "%" + where.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(Alert.message.ilike(pattern, escape="\\"))
    if where.reviewed is not None:
        query = query.where(Alert.reviewed.is_(where.reviewed))
    if where.false_positive is not None:
        query = query.where(Alert.false_positive.is_(where.false_positive))
    if where.min_confidence is not None:
        query = query.where(MetadataNumber("confidence") >= where.min_confidence)
    if where.max_confidence is not None:
        query = query.where(MetadataNumber("confidence") <= where.max_confidence)
    return query


def _would_change(values: dict[str, object]) -> ColumnElement[bool]:
    """Alerts on which setting ``values`` (review fields only count) changes something."""
    differs = [
        getattr(Alert, name).is_distinct_from(value)
        for name, value in values.items()
        if name in ("reviewed", "false_positive", "keep", "note")
    ]
    return or_(*differs) if differs else true()
