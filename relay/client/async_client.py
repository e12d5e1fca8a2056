"""The asyncio client of the relay: one WebSocket session that survives the network.

:class:`RelayClient` keeps a connection to ``/api/streams/ws`` for as long as it
is open.  When the connection drops or cannot be made it waits (exponential
backoff with full jitter, :mod:`relay.client.backoff`) and connects again, then
restores everything the application had set up, in this order:

1. authentication (``Authorization: Bearer`` on the upgrade; close 1008 or HTTP
   401 means the token is bad: the client stops and raises
   :class:`~relay.client.errors.AuthenticationError` instead of retrying forever);
2. every ``register`` and ``subscribe``, consumers with ``sinceAlertId`` = the
   last alert they received, so alerts stored while the client was away are
   replayed before live ones (:mod:`relay.client.attachments`);
3. every alert not yet confirmed by ``alert-stored`` (:mod:`relay.client.pending`);
   the relay stores an alert once per ``ref``, so resending is safe;

and only then takes frames again.  Frames are never queued for later: while
disconnected they are dropped (and counted); while the socket is backed up the
newest frame of each stream waits in a one-frame slot and replaces the one
before it, so what goes out is always the freshest picture.

Incoming messages are typed (:mod:`relay.client.messages`) and read with
``async for message in client``, :meth:`RelayClient.receive`, or handed to an
``on_message`` callback.  The same object makes the REST calls an application
needs (:mod:`relay.client.rest`).  :class:`~relay.client.BlockingRelayClient`
offers the same methods to code that does not run an event loop.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import secrets
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Collection, Coroutine, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from relay import __version__
from relay.client.attachments import AlertCursor, Attachment, FrameForm
from relay.client.backoff import Backoff
from relay.client.errors import (
    AuthenticationError,
    ClientClosed,
    ForbiddenError,
    RelayError,
    RelayProtocolError,
    RelayUnavailable,
    RequestFailed,
)
from relay.client.inbox import Inbox
from relay.client.messages import Alert, Control, ErrorReport, Frame, Message, StreamStatus, parse_message
from relay.client.pending import PendingAlert, PendingAlerts
from relay.client.recent import Recent
from relay.client.rest import AlertPage, AlertQuery, RestApi, StreamInfo
from relay.client.urls import endpoints
from relay.clock import now_ms
from relay.wire import (
    ALERT,
    CONSUMABLE,
    DEFAULT_CONTENT_TYPE,
    VIDEO_FRAME,
    ProtocolError,
    encode_binary_frame,
    parse_text,
)

log = logging.getLogger("relay.client")

UNAUTHORIZED = 1008
"""The close code of a refused token: do not reconnect with it."""

_ATTACH_REFUSALS = frozenset({"forbidden", "invalid-message", "unauthorized", "not-registered"})
_RETRYABLE_ALERT_ERRORS = frozenset({"rate-limited"})
_REFUSAL_ERRORS: dict[str, type[RelayError]] = {"forbidden": ForbiddenError}

ImageLike = Any
"""A numpy image (as OpenCV uses), for :meth:`RelayClient.send_frame`; kept ``Any`` so numpy stays optional."""


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


class RelayClient:
    """A client of one relay; see the module docstring.

    ``url`` is the relay's address (``http://host:8000``; ``ws://`` forms work
    too).  ``token`` may be left out and obtained with :meth:`login`.
    ``frame_format`` is the form of outgoing frames and the default form of
    incoming ones (``binary``, 33 % smaller than ``json``).

    Use it as ``async with RelayClient(url, token) as client:`` or call
    :meth:`connect` and :meth:`close`.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        frame_format: FrameForm = "binary",
        max_pending_alerts: int = 1000,
        alert_resend_interval: float = 5.0,
        max_incoming_frames: int = 8,
        backoff: Backoff | None = None,
        connect_timeout: float = 10.0,
        http_timeout: float = 10.0,
        on_message: Callable[[Message], None] | None = None,
    ) -> None:
        if frame_format not in ("binary", "json"):
            raise ValueError(f"frame_format must be 'binary' or 'json', got {frame_format!r}")
        self.endpoints = endpoints(url)
        self.token = token
        self.user_id: str | None = None
        self.frame_format: FrameForm = frame_format
        self.stats = ClientStats()
        self._backoff = backoff or Backoff()
        self._connect_timeout = connect_timeout
        self._resend_interval = alert_resend_interval
        self._rest = RestApi(self.endpoints.http_base, lambda: self.token, timeout=http_timeout)
        self._on_message = on_message
        self._inbox = Inbox(max_incoming_frames)
        self._attachments: dict[str, Attachment] = {}
        self._cursors: dict[str, AlertCursor] = {}
        self._delivered_alerts: Recent[bool] = Recent()
        self._stored_refs: Recent[str] = Recent()
        self._pending = PendingAlerts(max_pending_alerts)
        self._frame_slots: dict[str, bytes | str] = {}
        self._frames_waiting = asyncio.Event()
        self._unsubscribing: dict[str, asyncio.Event] = {}
        self._ws: ClientConnection | None = None
        self._ready = asyncio.Event()
        self._stopped = asyncio.Event()
        self._authenticated = asyncio.Event()
        self._failure: RelayError | None = None
        self._supervisor: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        """Whether a connection is up, authenticated and its streams attached."""
        return self._ready.is_set()

    async def connect(self) -> None:
        """Connect, and keep reconnecting, until the relay accepted the token and the streams are attached.

        A relay that cannot be reached is retried with backoff for as long as it
        takes (wrap the call in ``asyncio.timeout`` to give up); a refused token
        raises :class:`AuthenticationError` at once.
        """
        self._start()
        await self._until(self._ready)

    def _start(self) -> None:
        """Start connecting in the background, unless already started."""
        self._check_usable()
        if self.token is None:
            raise AuthenticationError("no token: pass token=... or call login() first")
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(self._run(), name="relay-client")

    async def close(self, *, flush_timeout: float = 0.0) -> None:
        """Close for good.  With ``flush_timeout``, first wait that long for unconfirmed alerts.

        Alerts still unconfirmed then are reported (logged, and their
        :meth:`alert_stored` waiters get :class:`ClientClosed`), never dropped silently.
        """
        if self._stopped.is_set():
            await self._rest.aclose()
            return
        if flush_timeout > 0 and len(self._pending):
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(flush_timeout):
                    await self._pending.drained()
        self._stop(ClientClosed("the client was closed"))
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        await self._rest.aclose()

    def _stop(self, reason: RelayError) -> None:
        """Stop for good: every waiter and reader learns ``reason``."""
        if self._stopped.is_set():
            return
        if not isinstance(reason, ClientClosed):
            self._failure = reason
        self._stopped.set()
        unconfirmed = self._pending.fail_all(reason)
        if unconfirmed:
            log.warning(
                "stopping with %d alerts not confirmed by the relay (%s): refs %s",
                len(unconfirmed),
                reason,
                ", ".join(p.ref for p in unconfirmed[:20]),
            )
        self._inbox.end(reason)

    def _check_usable(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._stopped.is_set():
            raise ClientClosed("the client was closed")

    async def _until(self, event: asyncio.Event) -> None:
        """Wait for ``event``; raise the reason if the client stops first."""
        if not event.is_set():
            waits = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(self._stopped.wait())]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for wait in waits:
                    wait.cancel()
        if not event.is_set():
            raise self._failure or ClientClosed("the client was closed")

    # ------------------------------------------------------------------ REST

    async def login(self, username: str, password: str) -> str:
        """Trade a username and password for a token (``POST /api/auth/token``); the client uses it from now on."""
        issued = await self._rest.login(username, password)
        self.token, self.user_id = issued.token, issued.user_id
        return issued.token

    async def register_stream(
        self, device_name: str, device_type: str = "mobile", metadata: dict[str, Any] | None = None
    ) -> str:
        """Create a stream (``POST /api/streams/register``); returns its id."""
        return await self._rest.register_stream(device_name, device_type, metadata)

    async def list_streams(self) -> list[StreamInfo]:
        """The user's streams, oldest first (``GET /api/streams/list``)."""
        return await self._rest.list_streams()

    async def alerts_page(
        self,
        *,
        stream_ids: Sequence[str] = (),
        severities: Sequence[str] = (),
        since: str | None = None,
        until: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> AlertPage:
        """One page of alert history, newest first; pass its ``next_cursor`` for the next page."""
        return await self._rest.page(AlertQuery(stream_ids, severities, since, until), limit=limit, cursor=cursor)

    def alerts(
        self,
        *,
        stream_ids: Sequence[str] = (),
        severities: Sequence[str] = (),
        since: str | None = None,
        until: str | None = None,
        page_size: int = 100,
    ) -> AsyncGenerator[Alert, None]:
        """Every matching stored alert, newest first, page after page (``GET /api/alerts``)."""
        return self._rest.every_alert(AlertQuery(stream_ids, severities, since, until), page_size=page_size)

    # ------------------------------------------------------------------ streams

    async def register(
        self, stream_id: str, *, consumes: Collection[str] = (ALERT,), client_type: str = "mobile"
    ) -> None:
        """Become the producer of ``stream_id`` (a phone): it may send its frames and alerts.

        Connects first if :meth:`connect` was not called.  Returns once the
        relay confirmed; it is re-registered after every reconnect.
        ``consumes`` is what this producer receives (its alerts by default),
        resumed without loss after a reconnect.  Raises
        :class:`ForbiddenError` for a stream that is not the user's.
        """
        await self._attach(
            Attachment(stream_id, "register", client_type, tuple(consumes), (VIDEO_FRAME, ALERT), self.frame_format)
        )

    async def subscribe(
        self,
        stream_id: str,
        *,
        consumes: Collection[str] = tuple(sorted(CONSUMABLE)),
        produces: Collection[str] = (),
        frame_format: FrameForm | None = None,
        client_type: str = "dashboard",
        since_alert_id: str | None = None,
    ) -> None:
        """Consume ``stream_id`` (a dashboard, an ML service); ``produces`` what this client may send for it.

        Alerts are resumed after every reconnect from the last one received;
        ``since_alert_id`` sets where the first subscription starts (by default
        at the newest alert already stored).  Frames arrive in
        ``frame_format`` (default: the client's).  Raises :class:`ForbiddenError`
        for a stream that is not the user's.
        """
        if since_alert_id is not None:
            self._cursors[stream_id] = AlertCursor(since_alert_id, primed=True)
        await self._attach(
            Attachment(
                stream_id,
                "subscribe",
                client_type,
                tuple(consumes),
                tuple(produces),
                frame_format or self.frame_format,
            )
        )

    async def unsubscribe(self, stream_id: str) -> None:
        """Detach from ``stream_id`` entirely (consuming, producing, the producer role)."""
        self._check_usable()
        if self._attachments.pop(stream_id, None) is None:
            return
        self._cursors.pop(stream_id, None)
        self._frame_slots.pop(stream_id, None)
        ws = self._ws
        if ws is None:
            return
        done = self._unsubscribing[stream_id] = asyncio.Event()
        try:
            await ws.send(_json({"type": "unsubscribe", "streamId": stream_id}))
            await self._until(done)
        except ConnectionClosed:
            pass  # the connection is gone, and the next one will not attach the stream
        finally:
            self._unsubscribing.pop(stream_id, None)

    @property
    def streams(self) -> list[str]:
        """The streams this client is registered or subscribed to."""
        return list(self._attachments)

    async def _attach(self, attachment: Attachment) -> None:
        self._start()
        stream_id = attachment.stream_id
        self._attachments[stream_id] = attachment
        try:
            ws = self._ws
            if ws is not None:
                with contextlib.suppress(ConnectionClosed):  # the next connection attaches it
                    await self._send_attachment(ws, attachment)
            await self._until(attachment.confirmed)
        except BaseException:
            if self._attachments.get(stream_id) is attachment:
                del self._attachments[stream_id]
            raise
        if attachment.failure is not None:
            if self._attachments.get(stream_id) is attachment:
                del self._attachments[stream_id]
            raise attachment.failure

    async def _send_attachment(self, ws: ClientConnection, attachment: Attachment) -> None:
        """Send what attaches ``attachment`` on ``ws``, resuming its alerts without gap."""
        cursor = await self._alert_cursor(attachment)
        attachment.connection = ws
        attachment.failure = None
        attachment.confirmed.clear()
        for message in attachment.messages(cursor.last_id if cursor else None):
            await ws.send(_json(message))

    async def _alert_cursor(self, attachment: Attachment) -> AlertCursor | None:
        """Where this stream's alerts resume; established over REST the first time.

        The first attachment starts after the newest stored alert.  If the stream
        had none then and none arrived since, there is no alert id to resume
        from, so the alerts stored meanwhile are fetched over REST (every one of
        them is new to this client) and the subscription resumes after them.
        """
        if not attachment.consumes_alerts:
            return None
        stream_id = attachment.stream_id
        cursor = self._cursors.setdefault(stream_id, AlertCursor())
        if cursor.last_id is not None:
            return cursor
        if not cursor.primed:
            page = await self._rest.alerts_page(stream_ids=[stream_id], limit=1)
            cursor.last_id = page.alerts[0].id if page.alerts else None
            cursor.primed = True
            return cursor
        missed = [alert async for alert in self._rest.alerts(stream_ids=[stream_id], page_size=500)]
        for alert in reversed(missed):
            self._receive_alert(alert)
        return cursor

    # ------------------------------------------------------------------ sending

    async def send_frame(
        self,
        frame: bytes | bytearray | memoryview | ImageLike,
        *,
        stream_id: str | None = None,
        timestamp: int | None = None,
        form: FrameForm | None = None,
        quality: int = 80,
        content_type: str = DEFAULT_CONTENT_TYPE,
    ) -> bool:
        """Send one video frame: JPEG bytes, or a numpy image (encoded to JPEG at ``quality``).

        Never waits for the network and never queues stale frames: True if the
        frame went out or waits in its stream's one-frame slot (replacing an
        older frame there), False if it was dropped because the client is not
        connected.  ``timestamp`` is the capture time (ms since the epoch; now by
        default); ``form`` ``binary`` or ``json`` (default: the client's).
        """
        self._check_usable()
        stream_id = self._producing_stream(stream_id, VIDEO_FRAME)
        if isinstance(frame, bytes | bytearray | memoryview):
            data = bytes(frame)
        else:
            from relay.client.images import encode_jpeg

            data = encode_jpeg(frame, quality)
        if not data:
            raise ValueError("a frame needs image bytes")
        if self._ws is None:
            self.stats.frames_dropped_offline += 1
            return False
        stamp = now_ms() if timestamp is None else timestamp
        payload: bytes | str
        if (form or self.frame_format) == "binary":
            payload = encode_binary_frame(stream_id, data, timestamp=stamp, content_type=content_type)
        else:
            payload = _json(
                {
                    "type": VIDEO_FRAME,
                    "streamId": stream_id,
                    "timestamp": stamp,
                    "contentType": content_type,
                    "data": base64.b64encode(data).decode("ascii"),
                }
            )
        if stream_id in self._frame_slots:
            self.stats.frames_replaced += 1
        self._frame_slots[stream_id] = payload
        self._frames_waiting.set()
        return True

    async def send_alert(
        self,
        severity: str,
        message: str,
        *,
        stream_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        timestamp: int | None = None,
        ref: str | None = None,
    ) -> str:
        """Queue an alert and send it; returns its ``ref`` (generated unless given).

        The alert is resent, after reconnects and every ``alert_resend_interval``
        seconds, until the relay confirms it stored it (:meth:`alert_stored`
        waits for that).  Invalid alerts raise ValueError here, before anything
        is sent; a full queue raises :class:`~relay.client.errors.AlertQueueFull`.
        """
        self._check_usable()
        stream_id = self._producing_stream(stream_id, ALERT)
        body: dict[str, Any] = {
            "type": ALERT,
            "streamId": stream_id,
            "severity": severity,
            "message": message,
            "metadata": metadata or {},
            "timestamp": now_ms() if timestamp is None else timestamp,
            "ref": ref or f"py-{secrets.token_urlsafe(12)}",
        }
        wire = _json(body)
        try:
            parse_text(wire)  # the relay's own validation, so a bad alert fails here and now
        except ProtocolError as error:
            raise ValueError(f"invalid alert: {error.message}") from None
        if body["ref"] in self._stored_refs:
            return str(body["ref"])
        pending = self._pending.add(body["ref"], stream_id, wire)
        ws = self._ws
        if ws is not None and pending.sends == 0:
            await self._send_pending(ws, pending)
        return pending.ref

    async def alert_stored(self, ref: str) -> str:
        """Wait until the relay stored the alert ``ref``; returns its id.

        Raises :class:`~relay.client.errors.AlertRejected` if the relay refused
        it for good, KeyError for a ref this client did not send.
        """
        stored = self._stored_refs.get(ref)
        if stored is not None:
            return stored
        future = self._pending.future(ref)
        if future is None:
            raise KeyError(f"no alert with ref {ref!r} was sent by this client (or it was confirmed long ago)")
        waits: list[asyncio.Future[Any]] = [future, asyncio.ensure_future(self._stopped.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waits[1].cancel()
        if not future.done():
            raise self._failure or ClientClosed("the client was closed")
        return future.result()

    async def flush_alerts(self) -> None:
        """Wait until every alert sent so far is stored (or refused)."""
        drained = asyncio.ensure_future(self._pending.drained())
        stopped = asyncio.ensure_future(self._stopped.wait())
        try:
            await asyncio.wait([drained, stopped], return_when=asyncio.FIRST_COMPLETED)
        finally:
            drained.cancel()
            stopped.cancel()
        if len(self._pending):
            raise self._failure or ClientClosed("the client was closed")

    @property
    def pending_alerts(self) -> int:
        """How many alerts wait for the relay's confirmation."""
        return len(self._pending)

    def _producing_stream(self, stream_id: str | None, kind: str) -> str:
        """The stream to send ``kind`` for: the one named, or the only one this client may produce for."""
        allowed = [sid for sid, attachment in self._attachments.items() if attachment.may_produce(kind)]
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

    async def _send_pending(self, ws: ClientConnection, pending: PendingAlert) -> None:
        with contextlib.suppress(ConnectionClosed):  # resent after the reconnect
            self._pending.mark_sent(pending)
            await ws.send(pending.wire)
            self.stats.alerts_sent += 1

    # ------------------------------------------------------------------ receiving

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[Message]:
        while True:
            try:
                message = await self._inbox.get()
            except ClientClosed:
                return
            yield message

    async def receive(self) -> Message:
        """The next message (wrap in ``asyncio.timeout`` to bound the wait).

        Raises :class:`ClientClosed` once the client is closed and nothing is
        left, :class:`AuthenticationError` if the relay refused the token.
        """
        return await self._inbox.get()

    @property
    def frames_dropped_incoming(self) -> int:
        """Received frames the application did not read in time (older ones give way to newer)."""
        return self._inbox.frames_dropped

    def _deliver(self, message: Message) -> None:
        if self._on_message is None:
            self._inbox.put(message)
            return
        try:
            self._on_message(message)
        except Exception:
            log.exception("on_message callback failed for %s", type(message).__name__)

    def _receive_alert(self, alert: Alert) -> None:
        if not self._delivered_alerts.add(alert.id, True):
            return  # already delivered (a replay overlapping what was received)
        cursor = self._cursors.get(alert.stream_id)
        if cursor is not None:
            cursor.last_id = alert.id
            cursor.primed = True
        self.stats.alerts_received += 1
        self._deliver(alert)

    def _dispatch(self, raw: str | bytes) -> None:
        try:
            message = parse_message(raw)
        except RelayProtocolError as error:
            log.warning("%s", error)
            self._deliver(ErrorReport("unreadable-message", str(error)))
            return
        match message:
            case Frame():
                self.stats.frames_received += 1
                self._deliver(message)
            case Alert():
                self._receive_alert(message)
            case ErrorReport():
                self._relay_error(message)
            case Control():
                self._control(message)
            case StreamStatus():
                self._deliver(message)
            case None:
                pass  # a message type this client does not know: the relay may add some

    def _control(self, message: Control) -> None:
        stream_id = message.stream_id
        if message.type == "auth-ok":
            self.user_id = message.body.get("userId")
            self._authenticated.set()
        elif message.type in ("registered", "subscribed") and stream_id is not None:
            attachment = self._attachments.get(stream_id)
            if attachment is not None:
                attachment.acknowledged(message.type)
        elif message.type == "unsubscribed" and stream_id is not None:
            done = self._unsubscribing.get(stream_id)
            if done is not None:
                done.set()
        elif message.type == "alert-stored":
            ref, alert_id = message.body.get("ref"), message.body.get("id")
            if isinstance(ref, str) and isinstance(alert_id, str):
                self._stored_refs.add(ref, alert_id)
                if self._pending.confirm(ref, alert_id) is not None:
                    self.stats.alerts_confirmed += 1

    def _relay_error(self, error: ErrorReport) -> None:
        """Route an ``error`` to what caused it: an alert (by ``ref``), an attachment, or the application."""
        if error.ref is not None and error.ref in self._pending:
            if error.code in _RETRYABLE_ALERT_ERRORS:
                log.info("alert %s: %s; it is resent later", error.ref, error.code)
                return
            self._pending.reject(error.ref, error.code, error.message)
            log.warning("the relay refused alert %s for good: %s: %s", error.ref, error.code, error.message)
            # and the application hears of it below, whether or not it awaits alert_stored()
        elif error.stream_id is not None and error.code in _ATTACH_REFUSALS:
            attachment = self._attachments.get(error.stream_id)
            if attachment is not None and attachment.awaiting:
                kind = _REFUSAL_ERRORS.get(error.code, RelayProtocolError)
                attachment.refused(
                    kind(f"{error.code}: {error.message}", code=error.code, stream_id=error.stream_id, ref=error.ref)
                )
                return
        self._deliver(error)

    # ------------------------------------------------------------------ the connection

    async def _run(self) -> None:
        """Connect, serve the connection until it ends, wait, and again: until closed or refused."""
        try:
            while not self._stopped.is_set():
                try:
                    await self._serve_connection()
                except AuthenticationError as error:
                    log.error("%s; not reconnecting", error)
                    self._stop(error)
                    return
                delay = self._backoff.next_delay()
                self.stats.reconnects += 1
                log.info("reconnecting to %s in %.2f s", self.endpoints.ws_url, delay)
                await asyncio.sleep(delay)
        except Exception as error:  # a bug: say so rather than hang every waiter
            log.exception("relay client stopped by an unexpected error")
            self._stop(RelayError(f"the client stopped: {error!r}"))

    async def _serve_connection(self) -> None:
        """One connection, from the handshake to its end.  Returns to be retried; raises to stop."""
        url = self.endpoints.ws_url
        try:
            ws = await connect(
                url,
                additional_headers={"Authorization": f"Bearer {self.token}"},
                compression=None,  # JPEG does not compress; the relay does not negotiate it either
                max_size=None,
                open_timeout=self._connect_timeout,
                close_timeout=2,
                user_agent_header=f"vigil-relay-client/{__version__}",
            )
        except InvalidStatus as error:
            status = error.response.status_code
            if status in (401, 403):
                raise AuthenticationError(f"the relay refused the WebSocket upgrade: HTTP {status}") from None
            log.warning("the relay answered HTTP %d to the WebSocket upgrade", status)
            return
        except (OSError, TimeoutError, InvalidHandshake) as error:
            log.info("cannot connect to %s: %s", url, error)
            return
        self._authenticated.clear()
        reader = asyncio.create_task(self._read(ws), name="relay-client-reader")
        helpers: list[asyncio.Task[None]] = []
        try:
            if await self._handshake(ws, reader):
                self._ws = ws
                self._ready.set()
                self.stats.connected = True
                self.stats.connections += 1
                self._backoff.reset()
                log.info("connected to %s as %s; %d streams attached", url, self.user_id, len(self._attachments))
                helpers = [
                    asyncio.create_task(self._write_frames(ws), name="relay-client-frames"),
                    asyncio.create_task(self._resend_alerts(ws), name="relay-client-resend"),
                ]
                await reader
        finally:
            self._ws = None
            self._ready.clear()
            self.stats.connected = False
            self._frame_slots.clear()
            for task in [reader, *helpers]:
                task.cancel()
            await asyncio.gather(reader, *helpers, return_exceptions=True)
            for attachment in self._attachments.values():
                attachment.detached()
            await ws.close()
        if ws.close_code == UNAUTHORIZED:
            raise AuthenticationError(f"the relay refused the token: close 1008 {ws.close_reason or 'Unauthorized'}")
        log.info("connection to %s ended: code %s %s", url, ws.close_code, ws.close_reason or "")

    async def _handshake(self, ws: ClientConnection, reader: asyncio.Task[None]) -> bool:
        """Authenticate, attach every stream, resend unconfirmed alerts; False if the connection ended first."""
        if not await self._while_open(self._authenticated.wait(), reader):
            return False
        try:
            retried: set[str] = set()
            while todo := [a for a in self._attachments.values() if a.connection is not ws]:
                for attachment in todo:
                    try:
                        await self._send_attachment(ws, attachment)
                    except ForbiddenError as error:  # from REST: the stream is not (or no longer) the user's
                        attachment.connection = ws
                        attachment.refused(error)
                for attachment in todo:
                    if not await self._while_open(attachment.confirmed.wait(), reader):
                        return False
                    if self._settle_refused(attachment, may_retry=attachment.stream_id not in retried):
                        retried.add(attachment.stream_id)
            for pending in self._pending:
                await self._send_pending(ws, pending)
        except ConnectionClosed:
            return False
        except (RelayUnavailable, RequestFailed) as error:  # REST of the alert cursor: retry the whole
            log.info("cannot resume alerts over REST: %s", error)
            return False
        return True

    def _settle_refused(self, attachment: Attachment, *, may_retry: bool) -> bool:
        """A stream the relay refused on a reconnect: report it; True if it is to be attached again.

        If only the resume point was bad (the relay does not know that alert: its
        database was replaced), the stream is attached again once, resuming from
        the relay's newest alert, and the application is told alerts may be missing.
        """
        failure = attachment.failure
        if failure is None or not attachment.established:
            return False  # a first attachment: the register()/subscribe() call raises the failure
        cursor = self._cursors.get(attachment.stream_id)
        retry = may_retry and failure.code == "invalid-message" and cursor is not None and cursor.last_id is not None
        if retry and cursor is not None:
            self._cursors[attachment.stream_id] = AlertCursor()
            attachment.connection = None
            report = f"cannot resume alerts after {cursor.last_id}: {failure.message}; resuming from the newest"
        else:
            del self._attachments[attachment.stream_id]
            report = f"the relay refused {attachment.role} of {attachment.stream_id} again: {failure.message}"
        log.warning("%s", report)
        self._deliver(ErrorReport(failure.code or "refused", report, attachment.stream_id))
        return retry

    async def _while_open(self, waiting: Coroutine[Any, Any, Any], reader: asyncio.Task[None]) -> bool:
        """Await ``waiting`` unless the connection ends first (or it takes longer than the connect timeout)."""
        task = asyncio.ensure_future(waiting)
        try:
            done, _ = await asyncio.wait(
                [task, reader], timeout=self._connect_timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            task.cancel()
        if task not in done:
            log.info("connection ended or stalled during the handshake")
        return task in done

    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                self._dispatch(raw)

    async def _write_frames(self, ws: ClientConnection) -> None:
        """Send the newest frame of each stream; while a send waits for the network, newer frames replace it."""
        while True:
            await self._frames_waiting.wait()
            self._frames_waiting.clear()
            while self._frame_slots:
                stream_id = next(iter(self._frame_slots))
                await ws.send(self._frame_slots.pop(stream_id))
                self.stats.frames_sent += 1

    async def _resend_alerts(self, ws: ClientConnection) -> None:
        """Send alerts queued during the handshake, and resend those unconfirmed after ``alert_resend_interval``."""
        while True:
            for pending in self._pending.due(self._resend_interval):
                if pending.sends:
                    log.info("resending alert %s (no alert-stored yet)", pending.ref)
                await self._send_pending(ws, pending)
            await asyncio.sleep(self._resend_interval / 2)


def _json(message: dict[str, Any]) -> str:
    """JSON text; numpy numbers (as detectors hand them out) are written as plain numbers."""
    return orjson.dumps(message, option=orjson.OPT_SERIALIZE_NUMPY).decode()
