"""Who owns which stream, looked up once per stream per relay node.

Every ``register``, ``subscribe`` and refused frame needs the owner of a stream.
A stream's owner never changes (streams are not transferred), so a node
remembers the answer; a reconnect storm of a thousand dashboards then costs one
query per stream, not one per connection.  Ids that name no stream are
remembered too (an id is 96 random bits: no stream will ever take it), in a
bounded table, so that probing random ids cannot grow memory without limit.

A stream can be deleted: every node is told over the broker and
:meth:`StreamOwners.forget` remembers it as no stream at once (a lookup that
was under way when the stream went cannot bring the old owner back).  A node
whose broker was away may have missed that: it forgets everything
(:meth:`StreamOwners.forget_all`) when the broker is back.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

from relay.store import Streams

MAX_REMEMBERED: Final = 200_000
_NO_STREAM: Final = ""


class StreamOwners:
    def __init__(self, streams: Streams, *, max_entries: int = MAX_REMEMBERED) -> None:
        self._streams = streams
        self._max_entries = max_entries
        self._owners: OrderedDict[str, str] = OrderedDict()

    def known(self, stream_id: str, user_id: str | None) -> bool | None:
        """Whether ``user_id`` owns ``stream_id``, if this node knows already; None if it must look."""
        owner = self._owners.get(stream_id)
        if owner is None:
            return None
        return owner != _NO_STREAM and owner == user_id

    async def owns(self, stream_id: str, user_id: str | None) -> bool:
        """Whether ``user_id`` owns ``stream_id``; False also when there is no such stream."""
        known = self.known(stream_id, user_id)
        if known is not None:
            return known
        owner = await self._streams.owner(stream_id) or _NO_STREAM
        owner = self._owners.setdefault(stream_id, owner)  # a deletion told meanwhile wins over what was read
        self._trim()
        return owner != _NO_STREAM and owner == user_id

    def forget(self, stream_id: str) -> None:
        """The stream was deleted: from now on it is no stream, for everyone."""
        self._owners[stream_id] = _NO_STREAM
        self._owners.move_to_end(stream_id)
        self._trim()

    def forget_all(self) -> None:
        """Look every owner up again (after a broker outage, in which a deletion may have gone unheard)."""
        self._owners.clear()

    def _trim(self) -> None:
        while len(self._owners) > self._max_entries:
            self._owners.popitem(last=False)
