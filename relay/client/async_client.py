"""The asyncio client of the relay: one WebSocket session that survives the network.

:class:`RelayClient` keeps a connection to ``/api/streams/ws`` for as long as it
is open.  When the connection drops or cannot be made it waits (exponential
backoff with full jitter) and connects again, then restores everything the
application had set up: authentication (a refused token stops the client with
:class:`~relay.client.errors.AuthenticationError` instead of retrying forever),
every ``register`` and ``subscribe`` with alerts resumed after the last one
received, so alerts stored while the client was away are replayed before live
ones, and every alert the relay has not confirmed yet; and only then takes
frames again (the steps are in :mod:`relay.client.connection`).  Frames are
never queued for later: while disconnected they are dropped (and counted);
while the socket is backed up the newest frame of each stream waits in a
one-frame slot and replaces the one before it, so what goes out is always the
freshest picture.

Incoming messages are typed (:mod:`relay.client.messages`) and read with
``async for message in client``, :meth:`RelayClient.receive`, or handed to an
``on_message`` callback.  The same object makes the REST calls an application
needs (:mod:`relay.client.rest`).  :class:`~relay.client.BlockingRelayClient`
offers the same methods to code that does not run an event loop.

This module is the public face only.  What to send, deliver and resend is
decided by the sans-I/O :class:`~relay.client.state.ClientState`, and
:class:`~relay.client.connection.Connection` carries it over the WebSocket.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Collection, Sequence
from types import TracebackType
from typing import Any, Self

from relay.client.attachments import Attachment, FrameForm
from relay.client.backoff import Backoff
from relay.client.connection import Connection
from relay.client.errors import ClientClosed
from relay.client.inbox import Inbox
from relay.client.messages import Alert, Message
from relay.client.rest import AlertPage, AlertQuery, RestApi, StreamInfo
from relay.client.state import ClientState, ClientStats
from relay.client.urls import endpoints
from relay.wire import ALERT, CONSUMABLE, DEFAULT_CONTENT_TYPE, VIDEO_FRAME

ImageLike = Any
"""A numpy image (as OpenCV uses), for :meth:`RelayClient.send_frame`; kept ``Any`` so numpy stays optional."""


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
        self._logged_in_token: str | None = None  # the token login() got, which the next login() replaces
        self.frame_format: FrameForm = frame_format
        self._state = ClientState(max_pending_alerts=max_pending_alerts)
        self.stats: ClientStats = self._state.stats
        self._rest = RestApi(self.endpoints.http_base, lambda: self.token, timeout=http_timeout)
        self._inbox = Inbox(max_incoming_frames)
        self._connection = Connection(
            self._state,
            self._rest,
            self._inbox,
            url=self.endpoints.ws_url,
            token=lambda: self.token,
            backoff=backoff or Backoff(),
            connect_timeout=connect_timeout,
            resend_interval=alert_resend_interval,
            on_message=on_message,
        )

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
        return self._connection.ready

    @property
    def user_id(self) -> str | None:
        """The user the token belongs to, once the relay (or :meth:`login`) said so."""
        return self._state.user_id

    async def connect(self) -> None:
        """Connect, and keep reconnecting, until the relay accepted the token and the streams are attached.

        A relay that cannot be reached is retried with backoff for as long as it
        takes (wrap the call in ``asyncio.timeout`` to give up); a refused token
        raises :class:`~relay.client.errors.AuthenticationError` at once.
        """
        await self._connection.connect()

    async def close(self, *, flush_timeout: float = 0.0) -> None:
        """Close for good.  With ``flush_timeout``, first wait that long for unconfirmed alerts.

        Alerts still unconfirmed then are reported (logged, and their
        :meth:`alert_stored` waiters get :class:`~relay.client.errors.ClientClosed`), never dropped silently.
        """
        await self._connection.close(flush_timeout=flush_timeout)
        await self._rest.aclose()

    # ------------------------------------------------------------------ REST

    async def login(self, username: str, password: str) -> str:
        """Trade a username and password for a token (``POST /api/auth/token``); the client uses it from now on.

        Logging in again on this client replaces the token its previous login
        got (the relay revokes it), so a client that logs in at every start of
        a session does not pile tokens up.  A token given to the constructor is
        never revoked: it may be shared with other programs.
        """
        issued = await self._rest.login(username, password, replaces=self._logged_in_token)
        self.token, self._state.user_id = issued.token, issued.user_id
        self._logged_in_token = issued.token
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
        :class:`~relay.client.errors.ForbiddenError` for a stream that is not the user's.
        """
        await self._connection.attach(
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
        ``frame_format`` (default: the client's).  Raises
        :class:`~relay.client.errors.ForbiddenError` for a stream that is not the user's.
        """
        if since_alert_id is not None:
            self._state.start_alerts_after(stream_id, since_alert_id)
        await self._connection.attach(
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
        await self._connection.unsubscribe(stream_id)

    @property
    def streams(self) -> list[str]:
        """The streams this client is registered or subscribed to."""
        return self._state.streams

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
        self._connection.check_usable()
        stream_id = self._state.producing_stream(stream_id, VIDEO_FRAME)
        if isinstance(frame, bytes | bytearray | memoryview):
            data = bytes(frame)
        else:
            from relay.client.images import encode_jpeg

            data = encode_jpeg(frame, quality)
        if not data:
            raise ValueError("a frame needs image bytes")
        payload = self._state.frame(
            stream_id, data, timestamp=timestamp, form=form or self.frame_format, content_type=content_type
        )
        if payload is None:
            return False
        self._connection.send_frame(stream_id, payload)
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
        frame_timestamp: int | None = None,
    ) -> str:
        """Queue an alert and send it; returns its ``ref`` (generated unless given).

        ``frame_timestamp`` is the ``timestamp`` of the frame the alert is about (a
        frame this client received): the relay stores that frame as its snapshot.

        The alert is resent, after reconnects and every ``alert_resend_interval``
        seconds, until the relay confirms it stored it (:meth:`alert_stored`
        waits for that).  Invalid alerts raise ValueError here, before anything
        is sent; a full queue raises :class:`~relay.client.errors.AlertQueueFull`.
        """
        self._connection.check_usable()
        ref, wire = self._state.alert(
            severity,
            message,
            stream_id=stream_id,
            metadata=metadata,
            timestamp=timestamp,
            ref=ref,
            frame_timestamp=frame_timestamp,
        )
        if wire is not None:
            await self._connection.send_alert(wire)
        return ref

    async def alert_stored(self, ref: str) -> str:
        """Wait until the relay stored the alert ``ref``; returns its id.

        Raises :class:`~relay.client.errors.AlertRejected` if the relay refused
        it for good, KeyError for a ref this client did not send.
        """
        stored = self._state.stored_alert_id(ref)
        if stored is not None:
            return stored
        future = self._state.pending.future(ref)
        if future is None:
            raise KeyError(f"no alert with ref {ref!r} was sent by this client (or it was confirmed long ago)")
        return await self._connection.outcome(future)

    async def flush_alerts(self) -> None:
        """Wait until every alert sent so far is stored (or refused)."""
        await self._connection.drained()

    @property
    def pending_alerts(self) -> int:
        """How many alerts wait for the relay's confirmation."""
        return len(self._state.pending)

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

        Raises :class:`~relay.client.errors.ClientClosed` once the client is closed
        and nothing is left, :class:`~relay.client.errors.AuthenticationError` if
        the relay refused the token.
        """
        return await self._inbox.get()

    @property
    def frames_dropped_incoming(self) -> int:
        """Received frames the application did not read in time (older ones give way to newer)."""
        return self._inbox.frames_dropped
