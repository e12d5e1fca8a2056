"""The relay's second way to know a browser: the workbench's login cookie.

A browser that logged in to the workbench carries Panel's signed ``user`` cookie
(see :mod:`workbench.server.login`).  :class:`LoginCookieAuthenticator`, added to the
relay's authenticators, turns that cookie into the user's id, so the page's own
WebSocket to the relay and its export downloads are the analyst's without a
bearer token ever being put into the page or its URL.

The cookie is accepted only on ``GET``/``HEAD`` requests: that covers the
WebSocket upgrade (whose ``Origin`` the relay checks) and downloads, and never a
request that changes something, so another site cannot make a logged-in browser
register streams.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import panel as pn
from tornado.web import RequestHandler

from relay.identity.authenticators import AuthenticationFailed, Identified
from relay.store import Store

LOGIN_COOKIE: Final = "user"
"""Panel's signed cookie holding the logged-in username."""


class LoginCookieAuthenticator:
    """A relay authenticator: the user whose login cookie a ``GET`` request carries.

    Returns None (no credentials of this kind) without a valid cookie or for a
    method other than ``GET``/``HEAD``, and raises
    :class:`~relay.identity.authenticators.AuthenticationFailed` for a cookie
    whose user no longer exists.  ``store`` gives the relay's store once it is open.
    """

    def __init__(self, store: Callable[[], Store]) -> None:
        self._store = store

    async def __call__(self, handler: RequestHandler) -> Identified | None:
        if handler.request.method not in ("GET", "HEAD"):
            return None
        if not handler.application.settings.get("cookie_secret"):
            return None
        signed = handler.get_signed_cookie(LOGIN_COOKIE, max_age_days=pn.config.oauth_expiry)
        if not signed:
            return None
        user = await self._store().users.by_name(signed.decode())
        if user is None:
            raise AuthenticationFailed("the login cookie's user no longer exists")
        return Identified(user.id, "login cookie")
