"""What every REST handler shares: bearer auth, JSON in and out, JSON errors.

Errors are always ``{"error": {"code": ..., "message": ...}}`` with the fitting
status and never a stack trace; an unexpected exception is logged with its
traceback and answered ``500 internal-error``.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import orjson
from tornado.web import HTTPError, RequestHandler

if TYPE_CHECKING:
    from relay.app import Relay

log = logging.getLogger("relay.rest")

MAX_JSON_BODY = 1024 * 1024

_CODES = {
    400: "invalid-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    413: "too-large",
    429: "rate-limited",
}


class ApiError(HTTPError):
    """An HTTP error with a machine-readable ``code`` for the JSON body."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(status, reason=None)
        self.code = code or _CODES.get(status, "error")
        self.message = message


class ApiHandler(RequestHandler):
    """Base of the relay's REST handlers.  ``requires_auth = False`` for public ones."""

    requires_auth = True
    relay: Relay
    user_id: str

    def initialize(self, relay: Relay) -> None:
        self.relay = relay

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")

    async def prepare(self) -> None:
        if not self.relay.ready:
            raise ApiError(503, "the relay is starting; try again in a moment", "unavailable")
        if not self.requires_auth:
            return
        user_id = await self.relay.identify(self)
        if not user_id:
            raise ApiError(401, "send a valid bearer token: Authorization: Bearer <token>")
        self.user_id = user_id
        if not self.relay.rest_budget(user_id).allow():
            raise ApiError(429, "too many requests; slow down")

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

    def send_json(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(orjson.dumps(value))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(error, ApiError):
            code, message = error.code, error.message
        elif isinstance(error, HTTPError) and status_code < 500:
            code = _CODES.get(status_code, "error")
            message = error.log_message or HTTPStatus(status_code).phrase
        else:
            code, message = "internal-error", "the relay failed to answer; the error is in its log"
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps({"error": {"code": code, "message": message}}))


class NotFoundHandler(ApiHandler):
    """Any other ``/api/...`` path: a JSON 404 instead of an HTML page."""

    requires_auth = False

    def prepare(self) -> None:  # type: ignore[override]
        raise ApiError(404, f"no such endpoint: {self.request.path}")
