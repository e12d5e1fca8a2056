"""The streams a client is attached to, and how to attach them again after a reconnect.

Registration and subscriptions belong to a connection, not to a device: after
every reconnect the client must send them again, and a consumer must say from
which alert to resume.  An :class:`Attachment` remembers what the application
asked for; :meth:`Attachment.messages` builds what to send on a new connection.

A producer (``register``) is attached with two messages: ``register`` with no
``consumes``, then ``subscribe`` to its own stream for what it consumes, with
``sinceAlertId``.  ``register`` alone cannot resume alerts; the pair makes a
phone miss no alert raised while it was offline, exactly like a dashboard.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Literal

from relay.client.errors import RelayError
from relay.wire import ALERT, CONSUMABLE, PRODUCIBLE

Role = Literal["register", "subscribe"]
FrameForm = Literal["binary", "json"]


@dataclass(slots=True)
class AlertCursor:
    """Where a consumer of a stream's alerts resumes.

    ``last_id`` is the last alert delivered (or the newest stored when the
    stream was first attached); ``primed`` says that starting point was taken,
    so a stream with no alert then has ``primed`` and no ``last_id``: every
    alert stored since is new to this client.
    """

    last_id: str | None = None
    primed: bool = False


@dataclass(slots=True)
class Attachment:
    """One stream this client registered or subscribed to; see the module docstring."""

    stream_id: str
    role: Role
    client_type: str
    consumes: tuple[str, ...]
    produces: tuple[str, ...]
    frame_format: FrameForm
    confirmed: asyncio.Event = field(default_factory=asyncio.Event)
    failure: RelayError | None = None
    awaiting: set[str] = field(default_factory=set)
    connection: object | None = None
    established: bool = False

    def __post_init__(self) -> None:
        unknown = set(self.consumes) - CONSUMABLE
        if unknown:
            raise ValueError(f"consumes may list only {', '.join(sorted(CONSUMABLE))}; got {', '.join(unknown)}")
        unknown = set(self.produces) - PRODUCIBLE
        if unknown:
            raise ValueError(f"produces may list only {', '.join(sorted(PRODUCIBLE))}; got {', '.join(unknown)}")
        if self.frame_format not in ("binary", "json"):
            raise ValueError(f"frame_format must be 'binary' or 'json', got {self.frame_format!r}")

    @property
    def consumes_alerts(self) -> bool:
        return ALERT in self.consumes

    def may_produce(self, kind: str) -> bool:
        return kind in self.produces

    def messages(self, since_alert_id: str | None) -> list[dict[str, Any]]:
        """What to send on a new connection; resets what the attachment waits for."""
        subscribe: dict[str, Any] = {
            "type": "subscribe",
            "streamId": self.stream_id,
            "clientType": self.client_type,
            "consumes": list(self.consumes),
            "frameFormat": self.frame_format,
        }
        if since_alert_id is not None and self.consumes_alerts:
            subscribe["sinceAlertId"] = since_alert_id
        if self.role == "subscribe":
            if self.produces:
                subscribe["produces"] = list(self.produces)
            self.awaiting = {"subscribed"}
            return [subscribe]
        register = {
            "type": "register",
            "streamId": self.stream_id,
            "clientType": self.client_type,
            "produces": list(self.produces),
            "consumes": [],
        }
        if not self.consumes:
            self.awaiting = {"registered"}
            return [register]
        self.awaiting = {"registered", "subscribed"}
        return [register, subscribe]

    def acknowledged(self, kind: str) -> None:
        """``registered`` or ``subscribed`` arrived for this stream."""
        self.awaiting.discard(kind)
        if not self.awaiting:
            self.established = True
            self.confirmed.set()

    def refused(self, error: RelayError) -> None:
        """The relay refused the attachment: whoever waits for it gets ``error``."""
        self.failure = error
        self.awaiting.clear()
        self.confirmed.set()

    def detached(self) -> None:
        """The connection ended: the next one must attach this stream again."""
        self.confirmed.clear()
        self.awaiting.clear()
        self.connection = None
