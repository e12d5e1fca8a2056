"""The relay's second way to know a browser: the workbench's login cookie.

A browser that logged in to the workbench carries Panel's signed ``user`` cookie
(see :mod:`workbench.login`).  :class:`LoginCookieAuthenticator`, added to the
relay's authenticators, turns that cookie into the user's id, so the page's own
WebSocket to the relay and its export downloads are the analyst's without a
bearer token ever being put into the page or its URL.

The cookie is accepted only on ``GET``/``HEAD`` requests: that covers the
WebSocket upgrade (whose ``Origin`` the relay checks) and downloads, and never a
request that changes something, so another site cannot make a logged-in browser
register streams.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import panel as pn
from tornado.web import RequestHandler

if TYPE_CHECKING:
    from relay.app import Identity, Relay

LOGIN_COOKIE: Final = "user"
"""Panel's signed cookie holding the logged-in username."""


class LoginCookieAuthenticator:
    """A relay authenticator: the user whose login cookie a ``GET`` request carries.

    Returns None (no credentials of this kind) without a valid cookie or for a
    method other than ``GET``/``HEAD``, and False for a cookie whose user no
    longer exists.
    """

    def __init__(self, relay: Relay) -> None:
        self._relay = relay

    async def __call__(self, handler: RequestHandler) -> Identity:
        if handler.request.method not in ("GET", "HEAD"):
            return None
        if not handler.application.settings.get("cookie_secret"):
            return None
        signed = handler.get_signed_cookie(LOGIN_COOKIE, max_age_days=pn.config.oauth_expiry)
        if not signed:
            return None
        user = await self._relay.store.users.by_name(signed.decode())
        return user.id if user is not None else False
