"""Who makes a request: one result type, and the chain of authenticators that finds it.

An authenticator looks at an HTTP request (a REST call, or the WebSocket upgrade)
for one kind of credentials.  It answers :class:`Identified` when it recognises
them, None when the request carries none of its kind (the next authenticator is
asked), and raises :class:`AuthenticationFailed` when they are there but wrong:
a wrong token is refused at once, never passed on until some other
authenticator happens to accept the request (the shape of Starlette's
authentication backends).

The relay's own kinds are the ``Authorization: Bearer`` header and, on the
WebSocket upgrade only, ``?token=`` (for clients that cannot set headers).  The
workbench adds its login cookie (:mod:`workbench.server.cookie_auth`).  Tokens
inside WebSocket messages are checked by the session with the same
:class:`~relay.identity.tokens.TokenVerifier`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tornado.web import RequestHandler

from relay.identity.credentials import token_hash
from relay.identity.tokens import TokenVerifier


@dataclass(frozen=True, slots=True)
class Identified:
    """A request's user, and how it was recognised (for log lines)."""

    user_id: str
    how: str
    token_hash: str | None = None
    """The hash of the bearer token it came with (None for other credentials): what revoking it ends."""


class AuthenticationFailed(Exception):
    """Credentials were given, and they are wrong (an unknown token, a stale cookie)."""


Authenticator = Callable[[RequestHandler], Awaitable[Identified | None]]
"""Returns who made the request, None for "no credentials of my kind"; raises :class:`AuthenticationFailed`."""


class Authenticators:
    """The chain: the first authenticator that recognises the request's credentials decides.

    ``tokens`` is given when the database is open (the node's start); other
    authenticators may be appended to :attr:`chain` before that.
    """

    def __init__(self, tokens: TokenVerifier | None = None) -> None:
        self.tokens = tokens
        self.chain: list[Authenticator] = [self.bearer_header]

    async def identify(self, request: RequestHandler) -> Identified | None:
        """Who makes this request; None without credentials; raises :class:`AuthenticationFailed`."""
        for authenticator in self.chain:
            identity = await authenticator(request)
            if identity is not None:
                return identity
        return None

    async def identify_upgrade(self, request: RequestHandler) -> Identified | None:
        """As :meth:`identify`, and ``?token=`` too: the WebSocket upgrade of clients without headers."""
        identity = await self.identify(request)
        if identity is None and (token := request.get_query_argument("token", None)):
            return await self.token(token, "query token")
        return identity

    async def token(self, token: str, how: str) -> Identified:
        """The user of a bearer token, however it came; raises :class:`AuthenticationFailed`."""
        assert self.tokens is not None, "the relay has not started"
        user_id = await self.tokens.user_id(token)
        if user_id is None:
            raise AuthenticationFailed(f"unknown token ({how})")
        return Identified(user_id, how, token_hash(token))

    @property
    def tokens_only(self) -> bool:
        """Whether the relay's own kinds are all the chain knows (no login cookie, say)."""
        return self.chain == [self.bearer_header]

    async def identify_credentials(self, authorization: str | None, query_token: str | None) -> Identified | None:
        """As :meth:`identify_upgrade`, for an upgrade read without Tornado: only when :attr:`tokens_only`.

        ``authorization`` is the ``Authorization`` header, ``query_token`` the
        ``?token=`` argument as Tornado would give it.
        """
        assert self.tokens_only, "other authenticators need Tornado's request"
        identity = await self._bearer(authorization or "")
        if identity is None and query_token:
            return await self.token(query_token, "query token")
        return identity

    async def bearer_header(self, request: RequestHandler) -> Identified | None:
        return await self._bearer(request.request.headers.get("Authorization", ""))

    async def _bearer(self, header: str) -> Identified | None:
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            return None
        return await self.token(credentials.strip(), "bearer header")
