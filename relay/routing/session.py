"""One client's conversation on ``/api/streams/ws``: authentication first, then the router.

The WebSocket layer (:mod:`relay.tornado.connection`) hands a :class:`Session`
every complete message, text or binary; the session parses it with
:mod:`relay.wire`, answers a rejected one with ``error``, and hands the rest to
the :class:`~relay.routing.router.Router`.  It does no I/O of its own: what it
says goes to the connection's outbox, and closing is asked of its
:class:`SessionLink`, so every rule here is tested without a socket.

Authentication is a small protocol of its own.  A client is known from its
upgrade request (``Authorization`` header, login cookie, ``?token=``), or from a
first ``auth`` message, or from the ``token`` of its first ``register`` or
``subscribe``.  Until then only ``ping`` is answered (``pong``); anything else
gets ``unauthorized``.  A wrong token, or none within the auth timeout, closes the
connection with 1008 ``Unauthorized``.  ``auth-ok`` is sent once, however the
token came.

Messages that need the database (register, subscribe, alerts, tokens) return an
awaitable; the WebSocket layer reads nothing more from that client until it is
done, so one client's messages take effect in the order it sent them.  Frames
take the synchronous path.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable
from typing import Protocol

from relay.identity.authenticators import AuthenticationFailed, Authenticators, Identified
from relay.routing.connection import Connection
from relay.routing.router import Router
from relay.store import is_unavailable
from relay.wire import (
    AlertIn,
    Auth,
    ClientMessage,
    CloseCode,
    NotUtf8,
    Ping,
    ProtocolError,
    Register,
    Subscribe,
    Unsubscribe,
    VideoFrame,
    parse_binary,
    parse_text,
)

log = logging.getLogger("relay.session")

UNAUTHORIZED = "Unauthorized"
AUTH_TIMEOUT_SPREAD = 0.2
"""A silent session is closed between ``auth_timeout`` and 1.2 times it after its upgrade (never sooner)."""


class SessionLink(Protocol):
    """What a session tells its connection (the WebSocket layer implements it)."""

    def terminate(self, code: int, reason: str, *, abort: bool = False) -> None:
        """End the connection with this close code."""

    def admitted(self) -> None:
        """The client is authenticated: it may now send messages of full size."""


class Session:
    """See the module docstring.  One per WebSocket connection."""

    __slots__ = ("_authenticators", "_deadline", "_link", "_router", "connection")

    def __init__(
        self, connection: Connection, router: Router, authenticators: Authenticators, link: SessionLink
    ) -> None:
        self.connection = connection
        self._router = router
        self._authenticators = authenticators
        self._link = link
        self._deadline: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ authentication

    def begin(self, identity: Identified | None, *, refused: bool = False, auth_timeout: float = 10.0) -> None:
        """The upgrade is done: admit ``identity``, refuse wrong credentials, or wait for a token."""
        if refused:
            self._refuse("upgrade request")
        elif identity is not None:
            self._admit(identity)
        elif auth_timeout > 0:
            # Up to a fifth later, at random: sessions that arrived together (a reconnect storm, a flood
            # of silent ones) are not all closed in the same moment, and so do not all come back in it.
            deadline = auth_timeout * (1 + AUTH_TIMEOUT_SPREAD * random.random())
            self._deadline = asyncio.get_running_loop().call_later(deadline, self._timed_out)

    def _admit(self, identity: Identified) -> None:
        connection = self.connection
        connection.user_id = identity.user_id
        connection.token_hash = identity.token_hash
        self._cancel_deadline()
        connection.send({"type": "auth-ok", "userId": identity.user_id})
        self._link.admitted()
        log.info("open user=%s peer=%s auth=%s", identity.user_id, connection.peer, identity.how)

    def _refuse(self, how: str) -> None:
        log.info("auth failed via %s peer=%s", how, self.connection.peer)
        self._cancel_deadline()
        self._link.terminate(CloseCode.POLICY_VIOLATION, UNAUTHORIZED)

    def _timed_out(self) -> None:
        self._deadline = None
        if self.connection.user_id is None:
            log.info("auth timed out peer=%s", self.connection.peer)
            self._link.terminate(CloseCode.POLICY_VIOLATION, UNAUTHORIZED)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    async def _authenticate(self, token: str, how: str) -> bool:
        """Admit the connection by a token that came in a message; False (and closed) if it is wrong."""
        try:
            identity = await self._authenticators.token(token, how)
        except AuthenticationFailed:
            self._refuse(how)
            return False
        if self.connection.user_id is None:  # not admitted meanwhile by a message before this one
            self._admit(identity)
        return True

    # ------------------------------------------------------------------ messages

    def on_binary(self, data: bytes) -> Awaitable[None] | None:
        """A binary message: a video frame."""
        connection = self.connection
        if connection.outbox.closed:
            return None
        try:
            frame = parse_binary(data, known_ids=connection.permits)  # ids it may produce for passed the checks
            if connection.user_id is None:
                raise _unauthorized()
            waiting = self._router.frame(connection, frame)
            return None if waiting is None else self._answer_failures(waiting, frame)
        except ProtocolError as error:
            connection.send_error(error)
        except Exception:
            self._internal_error("a binary message")
        return None

    def on_text(self, text: bytes) -> Awaitable[None] | None:
        """A text message.  Raises :class:`~relay.wire.NotUtf8` for bytes that are not text at all."""
        connection = self.connection
        if connection.outbox.closed:
            return None
        try:
            message = parse_text(text)
            if type(message) is VideoFrame:
                if connection.user_id is None:
                    raise _unauthorized()
                return self._guarded(self._router.frame(connection, message), message)
            if type(message) is Ping:
                connection.send({"type": "pong"})
                return None
            return self._guarded(self._handle(message), message)
        except ProtocolError as error:
            connection.send_error(error)
        except NotUtf8:
            raise
        except Exception:
            self._internal_error("a text message")
        return None

    def _guarded(self, waiting: Awaitable[None] | None, message: ClientMessage) -> Awaitable[None] | None:
        return None if waiting is None else self._answer_failures(waiting, message)

    async def _answer_failures(self, waiting: Awaitable[None], message: ClientMessage) -> None:
        """Whatever goes wrong while a message is handled is answered, and the connection stays open.

        A database that is gone for now is answered ``unavailable`` with the
        message's ``ref`` and ``streamId``: the client resends, and nothing of it
        was stored or sent on.
        """
        try:
            await waiting
        except ProtocolError as error:
            self.connection.send_error(error)
        except Exception as error:
            if not is_unavailable(error):
                self._internal_error("a message")
                return
            log.warning(
                "database unavailable for %s from peer=%s: %s", type(message).__name__, self.connection.peer, error
            )
            self.connection.send_error(
                ProtocolError(
                    "unavailable",
                    "the relay cannot store this now (its database is unreachable); send it again later",
                    ref=getattr(message, "ref", None),
                    stream_id=getattr(message, "stream_id", None),
                )
            )

    def _internal_error(self, what: str) -> None:
        log.exception("failed on %s from peer=%s user=%s", what, self.connection.peer, self.connection.user_id)
        self.connection.send_error(ProtocolError("internal", "the relay failed on this message; it is logged"))

    def on_pong(self) -> None:
        self.connection.alive = True

    async def _handle(self, message: ClientMessage) -> None:
        """Everything but frames and pings: may wait for the database."""
        connection = self.connection
        router = self._router
        if connection.user_id is None:
            token = getattr(message, "token", None)
            if token is None:
                raise _unauthorized()
            if not await self._authenticate(token, f"{type(message).__name__.lower()} message"):
                return
            if type(message) is Auth:
                return
        match message:
            case AlertIn():
                await router.alert(connection, message)
            case Register():
                await router.register(connection, message)
            case Subscribe():
                await router.subscribe(connection, message)
            case Unsubscribe():
                router.unsubscribe(connection, message)
            case Auth():
                await self._reauthenticate(message.token)

    async def _reauthenticate(self, token: str) -> None:
        """An ``auth`` on an authenticated connection: fine if it names the same user."""
        try:
            identity = await self._authenticators.token(token, "auth message")
        except AuthenticationFailed:
            identity = None
        if identity is None or identity.user_id != self.connection.user_id:
            raise ProtocolError("unauthorized", "this connection is already authenticated as another user")

    # ------------------------------------------------------------------ the end

    def ended(self) -> None:
        """The connection is gone: clean up (its streams go offline), and let go of the connection's link."""
        self._cancel_deadline()
        self._router.disconnect(self.connection)
        # The link is the connection, which holds this session: without the cycle, a closed
        # connection is freed at once rather than by a full garbage collection.
        self._link = _ENDED


class _Ended:
    """The link of a session whose connection is gone: nothing left to close or admit."""

    def terminate(self, code: int, reason: str, *, abort: bool = False) -> None:
        pass

    def admitted(self) -> None:
        pass


_ENDED = _Ended()


def _unauthorized() -> ProtocolError:
    return ProtocolError("unauthorized", "authenticate first: send {'type': 'auth', 'token': ...}")
