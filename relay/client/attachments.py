"""The streams a client is attached to, and how to attach them again after a reconnect.

Registration and subscriptions belong to a connection, not to a device: after
every reconnect the client must send them again, and a consumer must say from
which alert to resume.  An :class:`Attachment` remembers what the application
asked for; :meth:`Attachment.messages` builds what to send on a new connection.
Attachments belong to the client's sans-I/O state (:mod:`relay.client.state`):
whoever waits for the relay's answer waits in :mod:`relay.client.connection`.

A producer (``register``) is attached with two messages: ``register`` with no
``consumes``, then ``subscribe`` to its own stream for what it consumes, with
``sinceAlertId``.  ``register`` alone cannot resume alerts; the pair makes a
phone miss no alert raised while it was offline, exactly like a dashboard.
"""

from __future__ import annotations

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
    failure: RelayError | None = None
    """Why the relay refused it on the connection it was last sent on."""
    awaiting: set[str] = field(default_factory=set)
    """The confirmations (``registered``, ``subscribed``) still to come on that connection."""
    connection: object | None = None
    """The connection it was last sent on, compared by identity; None until the next one."""
    established: bool = False
    """The relay confirmed it once: a later refusal comes on a reconnect, with nobody waiting for it."""

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

    def acknowledged(self, kind: str) -> bool:
        """``registered`` or ``subscribed`` arrived for this stream; True once the relay confirmed all of it."""
        self.awaiting.discard(kind)
        if self.awaiting:
            return False
        self.established = True
        return True

    def refused(self, error: RelayError) -> None:
        """The relay refused the attachment: whoever waits for it gets ``error``."""
        self.failure = error
        self.awaiting.clear()

    def detached(self) -> None:
        """The connection ended: the next one must attach this stream again."""
        self.awaiting.clear()
        self.connection = None
