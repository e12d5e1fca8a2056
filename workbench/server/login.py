"""Logging in to the workbench with the relay's own users.

The login page is the workbench's own (``templates/login.html``: the Vigil Relay
name, inline CSS, nothing fetched from another host, so it loads offline), where
Panel's has a logo and a font from a CDN.  It posts a username and password;
:class:`WorkbenchLoginHandler` checks them against the relay's users (the same scrypt hashes ``POST
/api/auth/token`` checks, off the event loop) and sets Panel's signed ``user``
cookie, which admits the browser to the pages and, through
:mod:`workbench.server.cookie_auth`, to the relay's ``/api/...``.

:func:`install_login` makes this the login of ``panel serve workbench`` (the
handler is registered with Panel as the ``workbench`` auth provider, an entry
point; ``app_hooks.py`` selects it before Panel reads its configuration) and
gives Panel a cookie secret if none was configured.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import jinja2
import panel as pn
from panel.auth import BasicLoginHandler
from panel.io.resources import BASIC_LOGIN_TEMPLATE
from tornado.escape import url_escape

from workbench.server.runtime import relay

log = logging.getLogger("workbench.server.login")

PROVIDER: Final = "workbench"
"""The name under which Panel knows this login (``PANEL_OAUTH_PROVIDER``)."""

SECRET_FILE_VARIABLE: Final = "WORKBENCH_SECRET_FILE"
DEFAULT_SECRET_FILE: Final = ".workbench-secret"

LOGIN_TEMPLATE: Final = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")), autoescape=True
).get_template("login.html")
"""The workbench's login page, rendered with the variables Panel gives its own
(``login_endpoint``, ``errormessage``)."""


class WorkbenchLoginHandler(BasicLoginHandler):
    """Panel's login handler with the workbench's page; only the page and the password check are the relay's."""

    def get(self) -> None:
        """Panel's login page, drawn from :data:`LOGIN_TEMPLATE`.

        Panel's auth provider gives the handler its template when the server starts
        (Panel's own, or the operator's ``--basic-login-template FILE``, the way Panel
        offers to brand a login); Panel's own is replaced here, an operator's is kept.
        """
        if self._login_template is BASIC_LOGIN_TEMPLATE:
            self._login_template = LOGIN_TEMPLATE
        super().get()  # type: ignore[no-untyped-call]

    async def post(self) -> None:
        username = self.get_argument("username", "")
        password = self.get_argument("password", "")
        node = relay()
        if not node.ready:
            self._fail("The workbench is starting; try again in a moment.")
            return
        address = self.request.remote_ip or "-"
        if node.logins.admit(username, address) is not None:
            self._fail("Too many login attempts; wait a minute.")
            return
        user = await node.store.users.check_password(username, password) if username else None
        if user is None:
            log.info("login failed for %r from %s", username, self.request.remote_ip)
            self._fail("Invalid username or password!")
            return
        node.logins.succeeded(username, address)
        self.set_current_user(user.username)  # type: ignore[no-untyped-call]
        self.redirect(_same_site_path(self.get_cookie("next_url")) or "/")

    def _fail(self, message: str) -> None:
        self.redirect(f"{self.request.path}?error={url_escape(message)}")  # back to the form it was posted from


def _same_site_path(url: str | None) -> str | None:
    """``url`` if it is a path on this site (no scheme, host or backslash tricks), else None."""
    if not url or "\\" in url or not url.startswith("/") or url.startswith("//"):
        return None
    parts = urlsplit(url)
    return None if parts.scheme or parts.netloc else url


def install_login() -> None:
    """Make :class:`WorkbenchLoginHandler` Panel's login, and make sure cookies can be signed.

    The handler reaches Panel as an auth provider plugin: the ``panel.auth`` entry
    point ``workbench`` in ``pyproject.toml``, which Panel loads with its own
    providers.  This only selects it, as ``--oauth-provider workbench`` would.
    Idempotent: Bokeh executes ``app_hooks.py`` more than once per application.
    An ``--oauth-provider`` or ``PANEL_OAUTH_PROVIDER`` chosen by the operator wins.
    """
    # pn.config's settings are param-backed properties; Panel's own serve command assigns them like this.
    if not pn.config.oauth_provider:
        pn.config.oauth_provider = PROVIDER  # type: ignore[misc]
    if not pn.config.cookie_secret:
        secret_file = Path(os.environ.get(SECRET_FILE_VARIABLE, DEFAULT_SECRET_FILE))
        pn.config.cookie_secret = persistent_secret(secret_file)  # type: ignore[misc]


def persistent_secret(path: Path) -> str:
    """The cookie secret kept in ``path``, created (readable by its owner only) if missing.

    Kept across restarts so that a restart does not log every analyst out.
    ``PANEL_COOKIE_SECRET`` (read by Panel itself) takes precedence over the file.
    """
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    secret = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it a moment ago: use theirs
        return _read_secret(path)
    with os.fdopen(descriptor, "w") as file:
        file.write(secret + "\n")
    log.info("created the workbench's cookie secret in %s", path)
    return secret


def _read_secret(path: Path) -> str:
    secret = path.read_text().strip()
    if len(secret) < 32:
        raise ValueError(f"{path} holds no usable cookie secret (32 characters or more); delete it to make a new one")
    return secret
