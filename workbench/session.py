"""One browser tab's view of its analyst: who they are, their streams, their live alerts.

Every page of a tab reads the analyst's data from an :class:`AnalystSession`.
Streams are read from the store (the same query as ``GET /api/streams/list``)
when the tab opens and every :data:`STREAM_REFRESH_SECONDS` after, so a stream
registered while the tab is open appears without a reload.  Live alerts arrive
from the tab's :class:`~workbench.components.alert_feed.AlertFeed`; each becomes
:attr:`AnalystSession.latest_alert` once (a feed that reconnects may replay one).
Pages, toasts and the counter watch the session's params: ``streams``,
``unseen``, ``latest_alert`` and ``subscribed``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

import param

from relay.app import Relay
from relay.store.models import VideoStream
from workbench.alerts import LiveAlert

STREAM_REFRESH_SECONDS: Final = 2.0
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
    unseen = param.Integer(default=0, bounds=(0, None), doc="Live alerts since the analyst last looked.")
    latest_alert = param.ClassSelector(
        class_=LiveAlert, default=None, doc="The newest live alert of the analyst's streams, each one set once."
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

    @classmethod
    async def open(cls, relay: Relay, username: str) -> AnalystSession | None:
        """The session of ``username`` with their streams loaded; None if there is no such user."""
        user = await relay.store.users.by_name(username)
        if user is None:
            return None
        session = cls(relay, user.id, user.username)
        await session.refresh_streams()
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
        self.unseen += 1
        self.latest_alert = alert

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

    def mark_seen(self) -> None:
        self.unseen = 0
