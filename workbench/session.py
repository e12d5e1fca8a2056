"""One browser tab's view of its analyst: who they are, their streams, their live alerts.

Every page of a tab reads the analyst's data from an :class:`AnalystSession`.
Streams are read from the store (the same query as ``GET /api/streams/list``)
when the tab opens and every :data:`STREAM_REFRESH_SECONDS` after, so a stream
registered while the tab is open appears without a reload.  Live alerts arrive
from the tab's :class:`~workbench.components.alert_feed.AlertFeed`; each becomes
:attr:`AnalystSession.latest_alert` once (a feed that reconnects may replay one).

Reviews are the store's, not the tab's: :attr:`AnalystSession.unreviewed` is a
count of the analyst's unreviewed alerts read from the store, so it survives a
reload and is the same in every tab.  A review made here (:meth:`review`) is
stored, then announced by the relay as ``alert-updated`` to every dashboard of
the stream on every node, this tab's feed included; each update that reaches
the feed becomes :attr:`AnalystSession.latest_update` and makes the count be
read again (at most every :data:`RECOUNT_SECONDS`, however many updates a batch
review sends).

Pages, toasts and the counter watch the session's params: ``streams``,
``unreviewed``, ``latest_alert``, ``latest_update`` and ``subscribed``.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final

import param

from relay.app import Relay
from relay.store import AlertFilter
from relay.store.alerts import MAX_REVIEWED_PER_CALL, Review
from relay.store.models import VideoStream
from workbench.alerts import LiveAlert, ReviewUpdate

STREAM_REFRESH_SECONDS: Final = 2.0
RECOUNT_SECONDS: Final = 0.5
_REMEMBERED_ALERTS: Final = 10_000


@dataclass(frozen=True, slots=True)
class StreamLabel:
    """What the pages show of a stream; its live status comes to the tiles from the relay."""

    id: str
    device_name: str

    @classmethod
    def from_row(cls, stream: VideoStream) -> StreamLabel:
        return cls(stream.id, stream.device_name)


class AnalystSession(param.Parameterized):
    """See the module docstring.  Built by :meth:`open` once the tab's user is known."""

    streams = param.List(item_type=StreamLabel, doc="The analyst's streams, oldest first.")
    unreviewed = param.Integer(default=0, bounds=(0, None), doc="The analyst's alerts nobody has reviewed yet.")
    latest_alert = param.ClassSelector(
        class_=LiveAlert, default=None, doc="The newest live alert of the analyst's streams, each one set once."
    )
    latest_update = param.ClassSelector(
        class_=ReviewUpdate, default=None, doc="The newest review change of one of the analyst's alerts."
    )
    subscribed = param.String(
        default="",
        doc="The stream whose live alerts the feed last (re)started receiving; "
        "each subscription is an event, the same stream's again too.",
    )

    def __init__(self, relay: Relay, user_id: str, username: str) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.relay = relay
        self.user_id = user_id
        self.username = username
        self._delivered: OrderedDict[str, None] = OrderedDict()
        self._recount: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, relay: Relay, username: str) -> AnalystSession | None:
        """The session of ``username`` with their streams loaded; None if there is no such user."""
        user = await relay.store.users.by_name(username)
        if user is None:
            return None
        session = cls(relay, user.id, user.username)
        await session.refresh_streams()
        await session.count_unreviewed()
        return session

    # ------------------------------------------------------------------ streams

    @property
    def stream_ids(self) -> list[str]:
        return [stream.id for stream in self.streams]

    def label(self, stream_id: str) -> str:
        """The stream's device name, with the end of its id when another stream has the same name."""
        names = [stream.device_name for stream in self.streams]
        for stream in self.streams:
            if stream.id == stream_id:
                if names.count(stream.device_name) > 1:
                    return f"{stream.device_name} (…{stream.id[-4:]})"
                return stream.device_name
        return stream_id

    async def refresh_streams(self) -> None:
        """Read the analyst's streams; pages hear of it only when the list changed."""
        streams = [StreamLabel.from_row(row) for row in await self.relay.store.streams.for_user(self.user_id)]
        if streams != self.streams:
            self.streams = streams

    # ------------------------------------------------------------------ live alerts

    def receive(self, alert: LiveAlert) -> None:
        """A live alert of one of the analyst's streams, from the feed."""
        if alert.id in self._delivered:
            return
        self._delivered[alert.id] = None
        if len(self._delivered) > _REMEMBERED_ALERTS:
            self._delivered.popitem(last=False)
        if not alert.reviewed:
            self.unreviewed += 1
        self.latest_alert = alert

    # ------------------------------------------------------------------ reviews

    def receive_update(self, update: ReviewUpdate) -> None:
        """An ``alert-updated`` of one of the analyst's streams, from the feed."""
        self.latest_update = update
        if self._recount is None:
            self._recount = asyncio.get_running_loop().create_task(self._count_soon())

    async def _count_soon(self) -> None:
        try:
            await asyncio.sleep(RECOUNT_SECONDS)  # a batch review sends thousands of updates: count once
            await self.count_unreviewed()
        finally:
            self._recount = None

    async def count_unreviewed(self) -> None:
        self.unreviewed = await self.relay.store.alerts.unreviewed(self.user_id)

    async def review(
        self,
        where: AlertFilter,
        *,
        ids: Sequence[str] | None = None,
        reviewed: bool | None = None,
        false_positive: bool | None = None,
    ) -> tuple[int, bool]:
        """Review the analyst's alerts ``where`` selects (and of ``ids``, if given), as this analyst.

        Stored first, then announced to every dashboard of each stream (this tab's too); the
        count is read again at once.  Returns how many alerts changed and whether more would.
        """
        review = Review(self.username, reviewed=reviewed, false_positive=false_positive)
        changed, more = await self.relay.store.alerts.review_matching(
            replace(where, user_id=self.user_id), review, limit=MAX_REVIEWED_PER_CALL, ids=ids
        )
        self.relay.announce_reviews(changed)
        await self.count_unreviewed()
        return len(changed), more

    def subscription_started(self, stream_id: str) -> None:
        """The feed (re)started receiving ``stream_id``'s live alerts; watchers of :attr:`subscribed` hear of it.

        A feed that reconnects subscribes to the same streams again, and what was stored
        meanwhile must be read again: the same value is triggered, not set (param only
        tells of a value that changed).
        """
        if self.subscribed == stream_id:
            self.param.trigger("subscribed")
        else:
            self.subscribed = stream_id
