"""What every REST handler shares: bearer auth, JSON in and out, JSON errors.

Errors are always ``{"error": {"code": ..., "message": ...}}`` with the fitting
status and never a stack trace; an unexpected exception is logged with its
traceback and answered ``500 internal-error``.

Handlers know their relay node only through :class:`RestContext`, the few
things a REST call needs, so that they do not depend on the node's concrete
class (and the node's module may import them).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence, Sized
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Protocol

import orjson
from tornado.web import HTTPError, RequestHandler

from relay.history.service import History
from relay.identity.authenticators import AuthenticationFailed, Authenticators
from relay.identity.logins import LoginGuard
from relay.metrics import COUNTERS
from relay.ratelimit import KeyedBudgets
from relay.store import Store, is_unavailable
from relay.store.models import Alert

log = logging.getLogger("relay.rest")

MAX_JSON_BODY = 1024 * 1024

_CODES = {
    400: "invalid-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    413: "too-large",
    426: "upgrade-required",
    429: "rate-limited",
    431: "too-large",
    503: "unavailable",
}


class RestContext(Protocol):
    """What a REST handler needs of its relay node."""

    @property
    def ready(self) -> bool:
        """False until the database and broker are open (answers are then 503)."""

    @property
    def store(self) -> Store: ...

    @property
    def authenticators(self) -> Authenticators: ...

    @property
    def history(self) -> History:
        """Exports (and the analytics copy) of this node."""

    @property
    def rest_budgets(self) -> KeyedBudgets:
        """REST calls per user."""

    @property
    def logins(self) -> LoginGuard:
        """How often passwords may be tried."""

    def announce_reviews(self, alerts: Sequence[Alert]) -> None:
        """Send review changes to the alerts' streams' dashboards on every node."""

    def revoke_tokens(self, token_hashes: Sequence[str]) -> None:
        """These tokens were deleted: every node stops trusting them and closes their sessions."""

    async def delete_stream(self, stream_id: str, user_id: str) -> bool:
        """Delete the user's stream with its alerts and tell every node; False if it is not theirs."""

    @property
    def connections(self) -> Sized:
        """The open WebSocket connections (for metrics)."""


class ApiError(HTTPError):
    """An HTTP error with a machine-readable ``code`` for the JSON body."""

    def __init__(
        self, status: int, message: str, code: str | None = None, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(status, reason=None)
        self.code = code or _CODES.get(status, "error")
        self.message = message
        self.headers = headers or {}  # e.g. Retry-After: an error answer starts from cleared headers


class JsonHandler(RequestHandler):
    """A handler whose answers, errors included, are JSON and never cached."""

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")

    def send_json(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(orjson.dumps(value))

    @classmethod
    def allowed_methods(cls) -> list[str]:
        """The HTTP methods this handler answers (the ``Allow`` header of a 405)."""
        return [
            method
            for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
            if getattr(cls, method.lower()) is not getattr(RequestHandler, method.lower())
        ]

    def log_exception(self, typ: Any, value: BaseException | None, tb: Any) -> None:
        """A database that is gone for now is one line in the log (and a 503), not a traceback."""
        if value is not None and is_unavailable(value):
            COUNTERS.database_unavailable += 1
            log.warning("%s %s: database unavailable: %s", self.request.method, self.request.path, value)
            return
        super().log_exception(typ, value, tb)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if status_code == 405:
            self.set_header("Allow", ", ".join(self.allowed_methods()))
        answer = describe_error(status_code, kwargs.get("exc_info", (None, None, None))[1])
        self.set_status(answer.status)
        for name, value in answer.headers.items():
            self.set_header(name, value)
        self.set_header("Content-Type", "application/json")
        self.finish(answer.body())


@dataclass(frozen=True, slots=True)
class ErrorAnswer:
    """What an error is answered with: the same for REST and for an upgrade read off the socket."""

    status: int
    code: str
    message: str
    headers: dict[str, str]

    def body(self) -> bytes:
        return orjson.dumps({"error": {"code": self.code, "message": self.message}})


def describe_error(status_code: int, error: BaseException | None) -> ErrorAnswer:
    """The answer to ``error`` (or to a bare ``status_code``), never a traceback."""
    if error is not None and is_unavailable(error):
        message = "the relay cannot reach its database now; try again in a moment"
        return ErrorAnswer(503, "unavailable", message, {"Retry-After": "5"})
    if isinstance(error, ApiError):
        return ErrorAnswer(status_code, error.code, error.message, error.headers)
    if status_code < 500:
        message = (error.log_message if isinstance(error, HTTPError) else None) or HTTPStatus(status_code).phrase
        return ErrorAnswer(status_code, _CODES.get(status_code, "error"), message, {})
    return ErrorAnswer(status_code, "internal-error", "the relay failed to answer; the error is in its log", {})


class ApiHandler(JsonHandler):
    """Base of the relay's REST handlers.  ``requires_auth = False`` for public ones."""

    requires_auth = True
    public_methods: frozenset[str] = frozenset()
    """Methods answered without a token on a handler that otherwise requires one."""
    node: RestContext
    user_id: str
    token_hash: str | None = None
    """The hash of the bearer token of the call (None for other credentials, such as the workbench's cookie)."""

    def initialize(self, node: RestContext) -> None:
        self.node = node

    async def prepare(self) -> None:
        if not self.node.ready:
            raise ApiError(503, "the relay is starting; try again in a moment", "unavailable")
        method = self.request.method
        if not self.requires_auth or method in self.public_methods or method not in self.allowed_methods():
            return  # public, or a method this handler lacks: Tornado answers 405 whoever asks
        try:
            identity = await self.node.authenticators.identify(self)
        except AuthenticationFailed:
            identity = None
        if identity is None:
            raise ApiError(401, "send a valid bearer token: Authorization: Bearer <token>")
        self.user_id = identity.user_id
        self.token_hash = identity.token_hash
        if not self.node.rest_budgets.allow(identity.user_id):
            raise ApiError(429, "too many requests; slow down", headers={"Retry-After": "1"})

    async def username(self) -> str:
        """The caller's username (what a review records as who)."""
        user = await self.node.store.users.by_id(self.user_id)
        return user.username if user is not None else self.user_id

    def json_body(self) -> dict[str, Any]:
        """The request body as a JSON object, or a 400/413 error."""
        body = self.request.body
        if len(body) > MAX_JSON_BODY:
            raise ApiError(413, f"request body larger than {MAX_JSON_BODY} bytes")
        if not body:
            return {}
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise ApiError(400, "request body is not valid JSON", "invalid-json") from None
        if not isinstance(value, dict):
            raise ApiError(400, "request body must be a JSON object")
        return value


class NotFoundHandler(ApiHandler):
    """Any other ``/api/...`` path: a JSON 404 instead of an HTML page."""

    requires_auth = False

    def prepare(self) -> None:  # type: ignore[override]
        raise ApiError(404, f"no such endpoint: {self.request.path}")
