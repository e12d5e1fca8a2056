"""The client's WebSocket to the relay, kept up: asyncio and websockets around the sans-I/O state.

:class:`Connection` keeps a connection to ``/api/streams/ws`` for as long as
the client is open.  When it drops or cannot be made it waits (exponential
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

and only then takes frames again.  The backoff is reset only then, so a relay
that accepts connections and drops them at once still sees the delays grow.

What to send and what a message means is decided by
:class:`~relay.client.state.ClientState`; this module connects, sends, reads and
waits.  A working connection runs three tasks: the reader hands each message to
the state, the frame writer sends the newest frame of each stream, and the
resender sends alerts still unconfirmed after ``alert_resend_interval``.  The
waits the state cannot hold (an attachment confirmed, a stream detached, the
client stopped) are asyncio events here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from relay import __version__
from relay.client.attachments import Attachment
from relay.client.backoff import Backoff
from relay.client.errors import (
    AuthenticationError,
    ClientClosed,
    ForbiddenError,
    RelayError,
    RelayUnavailable,
    RequestFailed,
)
from relay.client.inbox import Inbox
from relay.client.messages import Message
from relay.client.rest import RestApi
from relay.client.state import ClientState, Received
from relay.wire import CloseCode

log = logging.getLogger("relay.client")

T = TypeVar("T")


class Connection:
    """The connection of one client, across reconnects; see the module docstring.

    Messages for the application go to ``on_message`` if given, else to ``inbox``.
    """

    def __init__(
        self,
        state: ClientState,
        rest: RestApi,
        inbox: Inbox,
        *,
        url: str,
        token: Callable[[], str | None],
        backoff: Backoff,
        connect_timeout: float,
        resend_interval: float,
        on_message: Callable[[Message], None] | None,
    ) -> None:
        self._state = state
        self._rest = rest
        self._inbox = inbox
        self._url = url
        self._token = token
        self._backoff = backoff
        self._connect_timeout = connect_timeout
        self._resend_interval = resend_interval
        self._on_message = on_message
        self._ws: ClientConnection | None = None
        self._ready = asyncio.Event()
        self._stopped = asyncio.Event()
        self._authenticated = asyncio.Event()
        self._settled: dict[str, asyncio.Event] = {}
        self._unsubscribing: dict[str, asyncio.Event] = {}
        self._frame_slots: dict[str, bytes | str] = {}
        self._frames_waiting = asyncio.Event()
        self._failure: RelayError | None = None
        self._supervisor: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def ready(self) -> bool:
        """Whether a connection is up, authenticated and its streams attached."""
        return self._ready.is_set()

    async def connect(self) -> None:
        """Start connecting unless started, and return once a connection is ready; raise if the client stops first."""
        self.start()
        await self._until(self._ready)

    def start(self) -> None:
        """Start connecting in the background, unless already started."""
        self.check_usable()
        if self._token() is None:
            raise AuthenticationError("no token: pass token=... or call login() first")
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(self._run(), name="relay-client")

    def check_usable(self) -> None:
        """Raise why the client stopped, if it did."""
        if self._stopped.is_set():
            raise self._stop_reason()

    async def close(self, *, flush_timeout: float = 0.0) -> None:
        """Stop for good; with ``flush_timeout``, first wait that long for unconfirmed alerts."""
        if self._stopped.is_set():
            return
        if flush_timeout > 0 and len(self._state.pending):
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(flush_timeout):
                    await self._state.pending.drained()
        self._stop(ClientClosed("the client was closed"))
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor

    def _stop(self, reason: RelayError) -> None:
        """Stop for good: every waiter and reader learns ``reason``; no unconfirmed alert goes unreported."""
        if self._stopped.is_set():
            return
        if not isinstance(reason, ClientClosed):
            self._failure = reason
        self._stopped.set()
        unconfirmed = self._state.pending.fail_all(reason)
        if unconfirmed:
            log.warning(
                "stopping with %d alerts not confirmed by the relay (%s): refs %s",
                len(unconfirmed),
                reason,
                ", ".join(p.ref for p in unconfirmed[:20]),
            )
        self._inbox.end(reason)

    async def _until(self, event: asyncio.Event) -> None:
        """Wait for ``event``; raise the reason if the client stops first."""
        if not event.is_set():
            await self._unless_stopped(event.wait())
        if not event.is_set():
            raise self._stop_reason()

    async def _unless_stopped(self, waiting: Coroutine[Any, Any, object]) -> None:
        """Await ``waiting`` or the client's stop, whichever comes first."""
        waits = [asyncio.ensure_future(waiting), asyncio.ensure_future(self._stopped.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    def _stop_reason(self) -> RelayError:
        """What the client stopped for: a failure (a refused token, a bug), or being closed."""
        return self._failure or ClientClosed("the client was closed")

    # ------------------------------------------------------------------ what the application does

    async def attach(self, attachment: Attachment) -> None:
        """Attach a new stream (now if connected, else on connecting) and return once the relay confirmed it.

        Raises the relay's refusal, or why the client stopped; either way the
        stream is not attached again later.
        """
        self.start()
        self._state.attach(attachment)
        settled = self._attachment_settled(attachment.stream_id)
        settled.clear()
        try:
            ws = self._ws
            if ws is not None:
                with contextlib.suppress(ConnectionClosed):  # the next connection attaches it
                    await self._send_attachment(ws, attachment)
            await self._until(settled)
        except BaseException:
            self._state.forget(attachment)
            raise
        if attachment.failure is not None:
            self._state.forget(attachment)
            raise attachment.failure

    async def unsubscribe(self, stream_id: str) -> None:
        """Detach from ``stream_id``; on an open connection, return once the relay confirmed it."""
        self.check_usable()
        message = self._state.unsubscribe(stream_id)
        self._frame_slots.pop(stream_id, None)
        ws = self._ws
        if message is None or ws is None:
            return
        done = self._unsubscribing[stream_id] = asyncio.Event()
        try:
            await ws.send(message)
            await self._until(done)
        except ConnectionClosed:
            pass  # the connection is gone, and the next one will not attach the stream
        finally:
            self._unsubscribing.pop(stream_id, None)

    def send_frame(self, stream_id: str, frame: bytes | str) -> None:
        """Put ``frame`` in its stream's one-frame slot, replacing a frame still waiting there."""
        if stream_id in self._frame_slots:
            self._state.stats.frames_replaced += 1
        self._frame_slots[stream_id] = frame
        self._frames_waiting.set()

    async def send_alert(self, alert: str) -> None:
        """Send an alert's text now; a connection lost meanwhile resends it after the reconnect."""
        ws = self._ws
        if ws is not None:
            await self._send_alert(ws, alert)

    async def outcome(self, future: asyncio.Future[T]) -> T:
        """The result of ``future`` (an alert's id); raise why the client stopped if it stops first."""
        await self._unless_stopped(asyncio.wait([future]))
        if not future.done():
            raise self._stop_reason()
        return future.result()

    async def drained(self) -> None:
        """Return once every alert sent so far is stored (or refused); raise if the client stops first."""
        await self._unless_stopped(self._state.pending.drained())
        if len(self._state.pending):
            raise self._stop_reason()

    def _deliver(self, message: Message) -> None:
        if self._on_message is None:
            self._inbox.put(message)
            return
        try:
            self._on_message(message)
        except Exception:
            log.exception("on_message callback failed for %s", type(message).__name__)

    def _attachment_settled(self, stream_id: str) -> asyncio.Event:
        """Set once the relay confirmed or refused the stream's latest attachment."""
        return self._settled.setdefault(stream_id, asyncio.Event())

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
                self._state.stats.reconnects += 1
                log.info("reconnecting to %s in %.2f s", self._url, delay)
                await asyncio.sleep(delay)
        except Exception as error:  # a bug: say so rather than hang every waiter
            log.exception("relay client stopped by an unexpected error")
            self._stop(RelayError(f"the client stopped: {error!r}"))

    async def _serve_connection(self) -> None:
        """One connection, from the handshake to its end.  Returns to be retried; raises to stop."""
        url = self._url
        try:
            ws = await connect(
                url,
                additional_headers={"Authorization": f"Bearer {self._token()}"},
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
        self._state.connection_made()
        reader = asyncio.create_task(self._read(ws), name="relay-client-reader")
        helpers: list[asyncio.Task[None]] = []
        stats = self._state.stats
        try:
            if await self._handshake(ws, reader):
                self._ws = ws
                self._state.opened()
                self._ready.set()
                stats.connected = True
                stats.connections += 1
                self._backoff.reset()
                log.info(
                    "connected to %s as %s; %d streams attached", url, self._state.user_id, len(self._state.attachments)
                )
                helpers = [
                    asyncio.create_task(self._write_frames(ws), name="relay-client-frames"),
                    asyncio.create_task(self._resend_alerts(ws), name="relay-client-resend"),
                ]
                await reader
        finally:
            self._ws = None
            self._state.connection_lost()
            self._ready.clear()
            stats.connected = False
            self._frame_slots.clear()
            for task in [reader, *helpers]:
                task.cancel()
            await asyncio.gather(reader, *helpers, return_exceptions=True)
            await ws.close()
        if ws.close_code == CloseCode.POLICY_VIOLATION:  # how the relay refuses a token: do not reconnect with it
            raise AuthenticationError(f"the relay refused the token: close 1008 {ws.close_reason or 'Unauthorized'}")
        log.info("connection to %s ended: code %s %s", url, ws.close_code, ws.close_reason or "")

    async def _handshake(self, ws: ClientConnection, reader: asyncio.Task[None]) -> bool:
        """Authenticate, attach every stream, resend unconfirmed alerts; False if the connection ended first."""
        if not await self._while_open(self._authenticated.wait(), reader):
            return False
        try:
            while todo := self._state.unattached(ws):
                for attachment in todo:
                    try:
                        await self._send_attachment(ws, attachment)
                    except ForbiddenError as error:  # from REST: the stream is not (or no longer) the user's
                        self._state.refuse(attachment, error, ws)
                        self._attachment_settled(attachment.stream_id).set()
                for attachment in todo:
                    if not await self._while_open(self._attachment_settled(attachment.stream_id).wait(), reader):
                        return False
                    report = self._state.settle_refused(attachment)
                    if report is not None:
                        self._deliver(report)
            for alert in self._state.resend_unconfirmed():
                await self._send_alert(ws, alert)
        except ConnectionClosed:
            return False
        except (RelayUnavailable, RequestFailed) as error:  # REST of the alert cursor: retry the whole
            log.info("cannot resume alerts over REST: %s", error)
            return False
        return True

    async def _send_attachment(self, ws: ClientConnection, attachment: Attachment) -> None:
        """Send what attaches ``attachment`` on ``ws``, first asking REST where its alerts resume if need be."""
        stream_id = attachment.stream_id
        lookup = self._state.resume_lookup(attachment)
        if lookup == "newest":
            page = await self._rest.alerts_page(stream_ids=[stream_id], limit=1)
            self._state.start_alerts_after(stream_id, page.alerts[0].id if page.alerts else None)
        elif lookup == "missed":
            missed = [alert async for alert in self._rest.alerts(stream_ids=[stream_id], page_size=500)]
            for alert in self._state.missed_alerts(missed):
                self._deliver(alert)
        self._attachment_settled(stream_id).clear()
        for message in self._state.attach_messages(attachment, ws):
            await ws.send(message)

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
                self._handle(self._state.receive(raw))

    def _handle(self, received: Received) -> None:
        if received.deliver is not None:
            self._deliver(received.deliver)
        if received.authenticated:
            self._authenticated.set()
        if received.settled is not None:
            self._attachment_settled(received.settled).set()
        if received.unsubscribed is not None:
            done = self._unsubscribing.get(received.unsubscribed)
            if done is not None:
                done.set()

    async def _write_frames(self, ws: ClientConnection) -> None:
        """Send the newest frame of each stream; while a send waits for the network, newer frames replace it."""
        while True:
            await self._frames_waiting.wait()
            self._frames_waiting.clear()
            while self._frame_slots:
                stream_id = next(iter(self._frame_slots))
                await ws.send(self._frame_slots.pop(stream_id))
                self._state.stats.frames_sent += 1

    async def _resend_alerts(self, ws: ClientConnection) -> None:
        """Send alerts queued during the handshake, and resend those unconfirmed after ``alert_resend_interval``."""
        while True:
            for alert in self._state.alerts_due(self._resend_interval):
                await self._send_alert(ws, alert)
            await asyncio.sleep(self._resend_interval / 2)

    async def _send_alert(self, ws: ClientConnection, alert: str) -> None:
        with contextlib.suppress(ConnectionClosed):  # resent after the reconnect
            await ws.send(alert)
            self._state.stats.alerts_sent += 1
