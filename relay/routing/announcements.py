"""News for every relay node, over the broker: a stream or old alerts were deleted, tokens were revoked.

Messages of a stream travel on that stream's channel, to the nodes that have
its consumers.  These concern every node whatever it carries, so they travel
as envelopes of a stream id no real stream can have (:data:`CONTROL_STREAM` is
not URL-safe), which every node listens to from its start: the in-process
broker hands them straight back, Redis to every node.  The node that publishes
one acts on it at once (brokers deliver locally first).

An announcement lost while Redis is unreachable is made up for: a node whose
broker comes back looks its streams and tokens up again (see
:class:`relay.app.Relay`).
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from relay.wire.envelope import Envelope

CONTROL_STREAM: Final = "*relay"
"""The channel of announcements: ``*`` is not allowed in a stream id."""
STREAM_DELETED: Final = "stream-deleted"
"""``{"streamId", "days"}``: the stream, its alerts and snapshots are gone (``days``: the UTC days it had alerts on)."""
ALERTS_DELETED: Final = "alerts-deleted"
"""``{"days": [...]}``: the retention deleted alerts stored on these UTC days."""
TOKENS_REVOKED: Final = "tokens-revoked"
"""``{"tokenHashes": [...]}``: these tokens no longer work (hashes only: tokens never travel)."""


def announcement(kind: str, body: dict[str, Any], *, node_id: str) -> Envelope:
    """The envelope of an announcement from ``node_id`` (whose own copy coming back from Redis is skipped)."""
    return Envelope.for_message(kind, CONTROL_STREAM, orjson.dumps(body), origin=f"{node_id}:announce")


def is_announcement(envelope: Envelope) -> bool:
    return envelope.stream_id == CONTROL_STREAM


def body_of(envelope: Envelope) -> dict[str, Any]:
    """An announcement's fields; an empty dict for a malformed one (from a node of another version)."""
    try:
        body = orjson.loads(envelope.payload or b"")
    except orjson.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}
