"""The few REST calls a client needs: a token, streams, alert history.

``POST /api/auth/token``, ``POST /api/streams/register``, ``GET /api/streams/list``
and ``GET /api/alerts`` (paged by ``nextCursor``, filtered by an :class:`AlertQuery`),
on :mod:`httpx`.  Error
answers become the exceptions of :mod:`relay.client.errors`: 401 is an
:class:`AuthenticationError`, 404 for a stream a :class:`ForbiddenError` (the
relay answers 404 for another user's stream as for a missing one), anything
else a :class:`RequestFailed` with the relay's error code.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from relay.client.errors import (
    AuthenticationError,
    ForbiddenError,
    RelayProtocolError,
    RelayUnavailable,
    RequestFailed,
)
from relay.client.messages import Alert


@dataclass(frozen=True, slots=True)
class Login:
    """The answer of ``POST /api/auth/token``."""

    token: str
    user_id: str


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """One stream as ``GET /api/streams/list`` shows it."""

    id: str
    device_name: str
    device_type: str
    status: str
    last_seen: str | None
    metadata: dict[str, Any]
    created_at: str

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> StreamInfo:
        try:
            return cls(
                id=body["id"],
                device_name=body["deviceName"],
                device_type=body["deviceType"],
                status=body["status"],
                last_seen=body.get("lastSeen"),
                metadata=dict(body.get("metadata") or {}),
                created_at=body["createdAt"],
            )
        except (KeyError, TypeError) as error:
            raise RelayProtocolError(f"malformed stream from the relay ({error!r}): {body}") from None


@dataclass(frozen=True, slots=True)
class AlertQuery:
    """Which stored alerts to list, as ``GET /api/alerts`` filters them; an empty field matches all.

    ``alerts_page`` and ``alerts`` of both clients and of :class:`RestApi` take
    these filters as keyword arguments, which their users know; each call
    gathers them here once, and only this value travels further down.
    ``since`` is inclusive and ``until`` exclusive, both ISO 8601 on ``createdAt``.
    """

    stream_ids: Sequence[str] = ()
    severities: Sequence[str] = ()
    since: str | None = None
    until: str | None = None

    def params(self) -> list[tuple[str, str]]:
        """The query string of ``GET /api/alerts`` for these filters."""
        params = [("streamId", stream_id) for stream_id in self.stream_ids]
        if self.severities:
            params.append(("severity", ",".join(self.severities)))
        if self.since is not None:
            params.append(("since", self.since))
        if self.until is not None:
            params.append(("until", self.until))
        return params


@dataclass(frozen=True, slots=True)
class AlertPage:
    """One page of ``GET /api/alerts``: newest first, and the cursor of the next page (None at the end)."""

    alerts: list[Alert]
    next_cursor: str | None


class RestApi:
    """REST calls to one relay; ``token`` is asked for at each call, so a login takes effect at once."""

    def __init__(self, http_base: str, token: Callable[[], str | None], *, timeout: float = 10.0) -> None:
        self._token = token
        self._http = httpx.AsyncClient(base_url=http_base, timeout=timeout, headers={"Accept": "application/json"})

    async def aclose(self) -> None:
        await self._http.aclose()

    async def login(self, username: str, password: str, *, replaces: str | None = None) -> Login:
        """A new token; ``replaces`` (a token this login makes unneeded) is revoked by the relay."""
        credentials = {"username": username, "password": password}
        if replaces is not None:
            credentials["replaces"] = replaces
        body = await self._call("POST", "/api/auth/token", json=credentials, auth=False)
        return Login(str(body["token"]), str(body["userId"]))

    async def register_stream(
        self, device_name: str, device_type: str = "mobile", metadata: dict[str, Any] | None = None
    ) -> str:
        body = await self._call(
            "POST",
            "/api/streams/register",
            json={"deviceName": device_name, "deviceType": device_type, "metadata": metadata or {}},
        )
        return str(body["streamId"])

    async def list_streams(self) -> list[StreamInfo]:
        body = await self._call("GET", "/api/streams/list")
        return [StreamInfo.from_json(stream) for stream in body["streams"]]

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
        """One page of alert history, newest first (filters as ``GET /api/alerts`` takes them)."""
        return await self.page(AlertQuery(stream_ids, severities, since, until), limit=limit, cursor=cursor)

    def alerts(
        self,
        *,
        stream_ids: Sequence[str] = (),
        severities: Sequence[str] = (),
        since: str | None = None,
        until: str | None = None,
        page_size: int = 100,
    ) -> AsyncGenerator[Alert, None]:
        """Every matching alert, newest first, following ``nextCursor`` page after page."""
        return self.every_alert(AlertQuery(stream_ids, severities, since, until), page_size=page_size)

    async def page(self, query: AlertQuery, *, limit: int = 100, cursor: str | None = None) -> AlertPage:
        """One page of the alerts ``query`` matches, newest first; ``cursor`` is the previous page's ``next_cursor``."""
        params: list[tuple[str, str | int | float | bool | None]] = [*query.params(), ("limit", limit)]
        if cursor is not None:
            params.append(("cursor", cursor))
        body = await self._call("GET", "/api/alerts", params=params, about_streams=bool(query.stream_ids))
        return AlertPage([Alert.from_json(alert) for alert in body["alerts"]], body.get("nextCursor"))

    async def every_alert(self, query: AlertQuery, *, page_size: int = 100) -> AsyncGenerator[Alert, None]:
        """Every alert ``query`` matches, newest first, fetching the next page as iteration reaches it."""
        cursor: str | None = None
        while True:
            page = await self.page(query, limit=page_size, cursor=cursor)
            for alert in page.alerts:
                yield alert
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: list[tuple[str, str | int | float | bool | None]] | None = None,
        auth: bool = True,
        about_streams: bool = False,
    ) -> dict[str, Any]:
        headers = {}
        if auth:
            token = self._token()
            if token is None:
                raise AuthenticationError("no token: pass token=... or log in first")
            headers["Authorization"] = f"Bearer {token}"
        try:
            response = await self._http.request(method, path, json=json, params=params, headers=headers)
        except httpx.TransportError as error:
            raise RelayUnavailable(f"{method} {self._http.base_url}{path}: {error!r}") from error
        body = _json(response)
        if response.is_success:
            return body
        error_body = body.get("error")
        if not isinstance(error_body, dict):
            error_body = {}
        code = error_body.get("code")
        message = str(error_body.get("message") or response.reason_phrase)
        if response.status_code == 401:
            raise AuthenticationError(f"{method} {path}: {message}", code=code)
        if response.status_code == 404 and about_streams:
            raise ForbiddenError(f"{method} {path}: {message}", code=code)
        raise RequestFailed(response.status_code, f"{method} {path}: {message}", code=code)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise RelayProtocolError(
            f"{response.request.method} {response.request.url}: HTTP {response.status_code} without JSON"
        ) from None
    if not isinstance(body, dict):
        raise RelayProtocolError(f"{response.request.url}: expected a JSON object, got {type(body).__name__}")
    return body
