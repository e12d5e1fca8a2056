"""``GET /api/alerts`` (paged history) and ``GET /api/alerts/export`` (a file).

Both read the same filters from the query string, newest first for the list.
Pages are cut by keyset on the storage sequence, so a page boundary never
shifts when new alerts arrive while someone pages: ``nextCursor`` is the opaque
position after the last alert of the page.
"""

from __future__ import annotations

import base64
import binascii
import logging
from contextlib import aclosing
from datetime import datetime
from typing import cast

from tornado.http1connection import HTTP1Connection

from relay.clock import parse_iso, utcnow
from relay.history.formats import FORMATS, MEDIA_TYPES
from relay.history.service import TooManyExports
from relay.representation import alert_json
from relay.rest.base import ApiError, ApiHandler
from relay.store import AlertFilter
from relay.wire import SEVERITIES, is_url_safe_id

log = logging.getLogger("relay.rest")

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_FILTER_CHARS = 200
FILTER_ARGUMENTS = ("streamId", "severity", "since", "until", "objectType", "q")
_CURSOR_PREFIX = "a1:"


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not text.startswith(_CURSOR_PREFIX) or len(text) > 40:
            raise ValueError(text)
        seq = int(text[len(_CURSOR_PREFIX) :])
        if not 0 <= seq < 2**63:
            raise ValueError(text)
        return seq
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ApiError(400, "cursor is not one this API returned") from None


class AlertQueryMixin(ApiHandler):
    """Reads the alert filters of the query string into an :class:`AlertFilter`."""

    query_arguments: tuple[str, ...] = FILTER_ARGUMENTS
    """The query arguments this endpoint knows; any other is refused, so that a typo is not ignored."""

    async def alert_filter(self) -> AlertFilter:
        strangers = sorted(set(self.request.query_arguments) - set(self.query_arguments))
        if strangers:
            known = ", ".join(self.query_arguments)
            raise ApiError(400, f"unknown query argument {strangers[0][:64]!r}; this endpoint takes {known}")
        stream_ids = self.get_query_arguments("streamId")
        for stream_id in stream_ids:
            if not is_url_safe_id(stream_id) or not await self._owns(stream_id):
                raise ApiError(404, f"stream {stream_id} not found")
        severities = [part for value in self.get_query_arguments("severity") for part in value.split(",") if part]
        unknown = set(severities) - set(SEVERITIES)
        if unknown:
            raise ApiError(400, f"severity must be one of {', '.join(SEVERITIES)}; got {', '.join(sorted(unknown))}")
        since, until = self._instant("since"), self._instant("until")  # an empty window matches nothing
        return AlertFilter(
            user_id=self.user_id,
            stream_ids=stream_ids,
            severities=severities,
            since=since,
            until=until,
            object_type=self._short_text("objectType"),
            text=self._short_text("q"),
        )

    def _short_text(self, name: str) -> str | None:
        value = self.get_query_argument(name, None) or None
        if value is not None and len(value) > MAX_FILTER_CHARS:
            raise ApiError(400, f"{name} may be at most {MAX_FILTER_CHARS} characters")
        return value

    async def _owns(self, stream_id: str) -> bool:
        return await self.node.store.streams.owner(stream_id) == self.user_id

    def _instant(self, name: str) -> datetime | None:
        value = self.get_query_argument(name, None)
        if value is None:
            return None
        try:
            return parse_iso(value)
        except ValueError:
            raise ApiError(400, f"{name} must be an ISO 8601 time such as 2026-11-25T20:00:00Z") from None


class AlertsHandler(AlertQueryMixin):
    query_arguments = (*FILTER_ARGUMENTS, "limit", "cursor")

    async def get(self) -> None:
        where = await self.alert_filter()
        raw_limit = self.get_query_argument("limit", str(DEFAULT_LIMIT))
        try:
            limit = int(raw_limit)
        except ValueError:
            raise ApiError(400, "limit must be a whole number") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise ApiError(400, f"limit must be between 1 and {MAX_LIMIT}")
        cursor = self.get_query_argument("cursor", None)
        before = decode_cursor(cursor) if cursor else None
        page = await self.node.store.alerts.search(where, limit=limit, before_seq=before)
        self.send_json(
            {
                "alerts": [alert_json(alert) for alert in page.alerts],
                "nextCursor": None if page.next_before is None else encode_cursor(page.next_before),
            }
        )


class ExportHandler(AlertQueryMixin):
    """The file, streamed: headers at once, then a piece per batch as the export makes it (chunked)."""

    query_arguments = ("format", *FILTER_ARGUMENTS)

    async def get(self) -> None:
        format = self.get_query_argument("format", "json")
        if format not in FORMATS:
            raise ApiError(400, f"format must be one of {', '.join(FORMATS)}")
        where = await self.alert_filter()
        pieces = self.node.history.export(where, format, owner=self.user_id)
        async with aclosing(pieces):
            try:
                first = await anext(pieces)
            except TooManyExports:
                raise ApiError(
                    429, "two exports of yours are running already; wait for one", headers={"Retry-After": "5"}
                ) from None
            stamp = utcnow().strftime("%Y%m%d-%H%M%S")
            self.set_header("Content-Type", MEDIA_TYPES[format])
            self.set_header("Content-Disposition", f'attachment; filename="alerts-{stamp}.{format}"')
            piece: bytes | None = first
            while piece is not None:
                self.write(piece)
                try:
                    await self.flush()  # the next piece is read once this one is with the client
                except OSError:  # the client went away: closing the pieces stops the export
                    return
                try:
                    piece = await anext(pieces, None)
                except Exception:
                    # The status line is sent: the only way left to say "this file is not whole" is to
                    # end the answer without its last chunk, so no client takes a cut file for a whole one.
                    log.exception("export failed midway for user %s", self.user_id)
                    cast(HTTP1Connection, self.request.connection).close()
                    return
        self.finish()


class ReportHandler(AlertQueryMixin):
    """The HTML report of the alerts the filters select, as an attachment (it opens offline)."""

    async def get(self) -> None:
        where = await self.alert_filter()
        page = await self.node.history.report(where)
        stamp = utcnow().strftime("%Y%m%d-%H%M%S")
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Content-Disposition", f'attachment; filename="alert-report-{stamp}.html"')
        self.finish(page.encode())
