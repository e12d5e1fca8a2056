"""The client's decisions, without I/O: what to send, what to deliver, what to resend.

:class:`ClientState` is the client's sans-I/O core, as websockets keeps its
``Protocol`` apart from its asyncio connection.  It remembers what the
application asked for (the streams attached, the alerts not yet confirmed) and
what the relay said (who the user is, which alerts were delivered, which were
stored), and turns each thing that happens into what follows from it:

* what the application asks (:meth:`~ClientState.attach`,
  :meth:`~ClientState.frame`, :meth:`~ClientState.alert`,
  :meth:`~ClientState.unsubscribe`) returns the text or bytes to send;
* the life of a connection (:meth:`~ClientState.connection_made`, the streams
  attached, :meth:`~ClientState.opened`, :meth:`~ClientState.connection_lost`)
  returns what a new connection must send (attachments, unconfirmed alerts);
* each message from the relay (:meth:`~ClientState.receive`) returns a
  :class:`Received`: what to hand the application, and which waits it ends.

It opens no socket, starts no task and waits for nothing, so its rules (resume
a stream's alerts after the last one received, never deliver one twice, resend
until confirmed, try a forgotten resume point once more from the newest alert)
are tested by feeding it messages (``tests/unit/test_client_state.py``).
:mod:`relay.client.connection` drives it over a WebSocket.  Where it needs what
only REST can tell (where a stream's alerts start), it says which lookup it
needs (:meth:`~ClientState.resume_lookup`) and is handed the answer.
"""

from __future__ import annotations

import base64
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from relay.client.attachments import AlertCursor, Attachment, FrameForm
from relay.client.errors import ForbiddenError, RelayError, RelayProtocolError
from relay.client.messages import Alert, Control, ErrorReport, Frame, Message, StreamStatus, parse_message
from relay.client.pending import PendingAlert, PendingAlerts
from relay.client.recent import Recent
from relay.clock import now_ms
from relay.wire import ALERT, VIDEO_FRAME, ProtocolError, encode_binary_frame, parse_text

log = logging.getLogger("relay.client")

_ATTACH_REFUSALS = frozenset({"forbidden", "invalid-message", "unauthorized", "not-registered"})
_RETRYABLE_ALERT_ERRORS = frozenset({"rate-limited", "unavailable"})
_REFUSAL_ERRORS: dict[str, type[RelayError]] = {"forbidden": ForbiddenError}

ResumeLookup = Literal["newest", "missed"]
"""What must be looked up over REST before a stream's alerts can resume on a connection.

``newest``: the stream is attached for the first time, and its alerts start
after the newest one stored (:meth:`ClientState.start_alerts_after`).
``missed``: the stream had no alert then and none has arrived since, so there is
no alert id to resume from; every alert stored meanwhile is new to this client
(:meth:`ClientState.missed_alerts`).
"""


@dataclass(slots=True)
class ClientStats:
    """Counters of one client, for logs and status lines."""

    connected: bool = False
    connections: int = 0
    reconnects: int = 0
    frames_sent: int = 0
    frames_replaced: int = 0
    frames_dropped_offline: int = 0
    frames_received: int = 0
    alerts_sent: int = 0
    alerts_confirmed: int = 0
    alerts_received: int = 0


@dataclass(frozen=True, slots=True)
class Received:
    """What one message from the relay leads to; a field is empty when it does not apply."""

    deliver: Message | None = None
    """A message for the application."""
    authenticated: bool = False
    """``auth-ok``: the relay accepted the token; :attr:`ClientState.user_id` says as whom."""
    settled: str | None = None
    """The stream whose attachment the relay has now confirmed or refused."""
    unsubscribed: str | None = None
    """The stream the relay has detached this client from."""


class ClientState:
    """What one client asked for and what the relay told it; see the module docstring."""

    def __init__(self, *, max_pending_alerts: int = 1000) -> None:
        self.stats = ClientStats()
        self.user_id: str | None = None
        self.attachments: dict[str, Attachment] = {}
        self.pending = PendingAlerts(max_pending_alerts)
        self._open = False
        self._cursors: dict[str, AlertCursor] = {}
        self._delivered_alerts: Recent[bool] = Recent()
        self._stored_refs: Recent[str] = Recent()
        self._resumes_retried: set[str] = set()

    @property
    def open(self) -> bool:
        """Whether a connection is up with every stream attached: only then do frames and alerts go out."""
        return self._open

    @property
    def streams(self) -> list[str]:
        """The streams this client is registered or subscribed to."""
        return list(self.attachments)

    # ------------------------------------------------------------------ what the application asks

    def attach(self, attachment: Attachment) -> None:
        """A stream the application registered or subscribed to: attached on every connection from now on."""
        self.attachments[attachment.stream_id] = attachment

    def forget(self, attachment: Attachment) -> None:
        """A first attachment that failed or was given up: no connection attaches it (unless asked for anew)."""
        if self.attachments.get(attachment.stream_id) is attachment:
            del self.attachments[attachment.stream_id]

    def start_alerts_after(self, stream_id: str, alert_id: str | None) -> None:
        """The stream's alerts start after ``alert_id`` (None: with the first alert stored from now on)."""
        self._cursors[stream_id] = AlertCursor(alert_id, primed=True)

    def unsubscribe(self, stream_id: str) -> str | None:
        """Detach from ``stream_id``; the ``unsubscribe`` to send if it is attached on an open connection."""
        if self.attachments.pop(stream_id, None) is None:
            return None
        self._cursors.pop(stream_id, None)
        return _json({"type": "unsubscribe", "streamId": stream_id}) if self._open else None

    def producing_stream(self, stream_id: str | None, kind: str) -> str:
        """The stream to send ``kind`` for: the one named, or the only one this client may produce for."""
        allowed = [sid for sid, attachment in self.attachments.items() if attachment.may_produce(kind)]
        if stream_id is None:
            if len(allowed) != 1:
                raise ValueError(
                    f"name the stream: this client may send {kind} for {len(allowed)} streams "
                    f"({', '.join(allowed) or 'none: register() or subscribe(produces=...) first'})"
                )
            return allowed[0]
        if stream_id not in allowed:
            raise ValueError(
                f"this client may not send {kind} for {stream_id}: register() it, "
                f"or subscribe() with produces=[{kind!r}]"
            )
        return stream_id

    def frame(
        self, stream_id: str, data: bytes, *, timestamp: int | None, form: FrameForm, content_type: str
    ) -> bytes | str | None:
        """A video frame as it goes on the wire, or None: offline it is dropped (and counted), never kept."""
        if not self._open:
            self.stats.frames_dropped_offline += 1
            return None
        stamp = now_ms() if timestamp is None else timestamp
        if form == "binary":
            return encode_binary_frame(stream_id, data, timestamp=stamp, content_type=content_type)
        return _json(
            {
                "type": VIDEO_FRAME,
                "streamId": stream_id,
                "timestamp": stamp,
                "contentType": content_type,
                "data": base64.b64encode(data).decode("ascii"),
            }
        )

    def alert(
        self,
        severity: str,
        message: str,
        *,
        stream_id: str | None,
        metadata: dict[str, Any] | None,
        timestamp: int | None,
        ref: str | None,
        frame_timestamp: int | None = None,
    ) -> tuple[str, str | None]:
        """Queue an alert until the relay confirms it: its ``ref``, and its text if it is to be sent now.

        It is checked by the relay's own rules first, so a bad alert raises
        ValueError here and is never queued; a full queue raises
        :class:`~relay.client.errors.AlertQueueFull`.  An alert already stored
        (the same ``ref``) is not queued again.  It is sent now only on an open
        connection and only the first time: after that it is resent by
        :meth:`alerts_due` and on every new connection.  ``frame_timestamp`` names the
        frame the alert is about (its ``timestamp``): the relay stores that frame with it.
        """
        stream_id = self.producing_stream(stream_id, ALERT)
        ref = ref or f"py-{secrets.token_urlsafe(12)}"
        wire = _json(
            {
                "type": ALERT,
                "streamId": stream_id,
                "severity": severity,
                "message": message,
                "metadata": metadata or {},
                "timestamp": now_ms() if timestamp is None else timestamp,
                "ref": ref,
                **({} if frame_timestamp is None else {"frameTimestamp": frame_timestamp}),
            }
        )
        try:
            parse_text(wire)  # the relay's own validation, so a bad alert fails here and now
        except ProtocolError as error:
            raise ValueError(f"invalid alert: {error.message}") from None
        if ref in self._stored_refs:
            return ref, None
        pending = self.pending.add(ref, stream_id, wire)
        if not self._open or pending.sends:
            return ref, None
        return ref, self._send_text(pending)

    def stored_alert_id(self, ref: str) -> str | None:
        """The id the relay stored the alert ``ref`` under, if it confirmed it (recently)."""
        return self._stored_refs.get(ref)

    # ------------------------------------------------------------------ the connection's life

    def connection_made(self) -> None:
        """A new connection, not yet authenticated: every stream is to be attached on it."""
        self._resumes_retried.clear()

    def unattached(self, connection: object) -> list[Attachment]:
        """The streams not yet attached on ``connection`` (any object that names it, compared by identity)."""
        return [attachment for attachment in self.attachments.values() if attachment.connection is not connection]

    def resume_lookup(self, attachment: Attachment) -> ResumeLookup | None:
        """The REST lookup needed before ``attachment`` can resume its alerts; None if none is."""
        if not attachment.consumes_alerts:
            return None
        cursor = self._cursors.setdefault(attachment.stream_id, AlertCursor())
        if cursor.last_id is not None:
            return None
        return "missed" if cursor.primed else "newest"

    def missed_alerts(self, alerts: Iterable[Alert]) -> list[Alert]:
        """The alerts a ``missed`` lookup found (newest first, as REST lists them); those to deliver, oldest first."""
        return [alert for alert in reversed(list(alerts)) if self._receive_alert(alert)]

    def attach_messages(self, attachment: Attachment, connection: object) -> list[str]:
        """What attaches ``attachment`` on ``connection``, resuming its alerts after the last one received."""
        cursor = self._cursors.get(attachment.stream_id) if attachment.consumes_alerts else None
        attachment.connection = connection
        attachment.failure = None
        return [_json(message) for message in attachment.messages(cursor.last_id if cursor else None)]

    def refuse(self, attachment: Attachment, error: RelayError, connection: object) -> None:
        """``attachment`` cannot be attached on ``connection``: REST says its stream is not the user's."""
        attachment.connection = connection
        attachment.refused(error)

    def settle_refused(self, attachment: Attachment) -> ErrorReport | None:
        """A stream the relay refused on a reconnect: what to tell the application, if anything.

        A first attachment is not settled here: its ``register()`` or
        ``subscribe()`` call raises the refusal.  If only the resume point was
        bad (the relay does not know that alert: its database was replaced), the
        stream is attached once more on this connection, resuming from the
        relay's newest alert, and the application is told alerts may be missing.
        Otherwise the stream is given up.
        """
        failure = attachment.failure
        if failure is None or not attachment.established:
            return None
        stream_id = attachment.stream_id
        cursor = self._cursors.get(stream_id)
        if (
            stream_id not in self._resumes_retried
            and failure.code == "invalid-message"
            and cursor is not None
            and cursor.last_id is not None
        ):
            self._resumes_retried.add(stream_id)
            self._cursors[stream_id] = AlertCursor()
            attachment.connection = None
            report = f"cannot resume alerts after {cursor.last_id}: {failure.message}; resuming from the newest"
        else:
            self.attachments.pop(stream_id, None)
            report = f"the relay refused {attachment.role} of {stream_id} again: {failure.message}"
        log.warning("%s", report)
        return ErrorReport(failure.code or "refused", report, stream_id)

    def resend_unconfirmed(self) -> list[str]:
        """Every alert not yet confirmed, to send once a new connection's streams are attached."""
        return [self._send_text(pending) for pending in self.pending]

    def opened(self) -> None:
        """The connection is authenticated and every stream attached: frames and alerts go out from now on."""
        self._open = True

    def alerts_due(self, resend_after: float) -> list[str]:
        """Alerts never sent, or unconfirmed ``resend_after`` seconds after they were: to send (again) now."""
        due = self.pending.due(resend_after)
        for pending in due:
            if pending.sends:
                log.info("resending alert %s (no alert-stored yet)", pending.ref)
        return [self._send_text(pending) for pending in due]

    def connection_lost(self) -> None:
        """The connection ended: nothing goes out until the next one has attached every stream again."""
        self._open = False
        for attachment in self.attachments.values():
            attachment.detached()

    # ------------------------------------------------------------------ what the relay sends

    def receive(self, raw: str | bytes) -> Received:
        """One message from the relay (``bytes`` a binary frame, ``str`` JSON) and what it leads to."""
        try:
            message = parse_message(raw)
        except RelayProtocolError as error:
            log.warning("%s", error)
            return Received(deliver=ErrorReport("unreadable-message", str(error)))
        match message:
            case Frame():
                self.stats.frames_received += 1
                return Received(deliver=message)
            case Alert():
                return Received(deliver=self._receive_alert(message))
            case ErrorReport():
                return self._relay_error(message)
            case Control():
                return self._control(message)
            case StreamStatus():
                return Received(deliver=message)
            case None:
                return Received()  # a message type this client does not know: the relay may add some

    def _receive_alert(self, alert: Alert) -> Alert | None:
        """``alert``, unless it was delivered already (a replay overlapping what was received)."""
        if not self._delivered_alerts.add(alert.id, True):
            return None
        cursor = self._cursors.get(alert.stream_id)
        if cursor is not None:
            cursor.last_id = alert.id
            cursor.primed = True
        self.stats.alerts_received += 1
        return alert

    def _control(self, message: Control) -> Received:
        stream_id = message.stream_id
        if message.type == "auth-ok":
            self.user_id = message.body.get("userId")
            return Received(authenticated=True)
        if message.type in ("registered", "subscribed") and stream_id is not None:
            attachment = self.attachments.get(stream_id)
            if attachment is not None and attachment.acknowledged(message.type):
                return Received(settled=stream_id)
        elif message.type == "unsubscribed" and stream_id is not None:
            return Received(unsubscribed=stream_id)
        elif message.type == "alert-stored":
            ref, alert_id = message.body.get("ref"), message.body.get("id")
            if isinstance(ref, str) and isinstance(alert_id, str):
                self._stored_refs.add(ref, alert_id)
                if self.pending.confirm(ref, alert_id) is not None:
                    self.stats.alerts_confirmed += 1
        return Received()

    def _relay_error(self, error: ErrorReport) -> Received:
        """Route an ``error`` to what caused it: an alert (by ``ref``), an attachment, or the application."""
        if error.ref is not None and error.ref in self.pending:
            if error.code in _RETRYABLE_ALERT_ERRORS:
                log.info("alert %s: %s; it is resent later", error.ref, error.code)
                return Received()
            self.pending.reject(error.ref, error.code, error.message)
            log.warning("the relay refused alert %s for good: %s: %s", error.ref, error.code, error.message)
            # and the application hears of it below, whether or not it awaits alert_stored()
        elif error.stream_id is not None and error.code in _ATTACH_REFUSALS:
            attachment = self.attachments.get(error.stream_id)
            if attachment is not None and attachment.awaiting:
                kind = _REFUSAL_ERRORS.get(error.code, RelayProtocolError)
                attachment.refused(
                    kind(f"{error.code}: {error.message}", code=error.code, stream_id=error.stream_id, ref=error.ref)
                )
                return Received(settled=error.stream_id)
        return Received(deliver=error)

    def _send_text(self, pending: PendingAlert) -> str:
        """The alert's wire text, counted as sent from now (its resend is timed from here)."""
        self.pending.mark_sent(pending)
        return pending.wire


def _json(message: dict[str, Any]) -> str:
    """JSON text; numpy numbers (as detectors hand them out) are written as plain numbers."""
    return orjson.dumps(message, option=orjson.OPT_SERIALIZE_NUMPY).decode()
