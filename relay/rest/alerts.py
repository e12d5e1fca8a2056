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
import math
import re
from collections.abc import Mapping, Sequence
from contextlib import aclosing
from datetime import datetime
from typing import cast

from tornado.http1connection import HTTP1Connection

from relay.clock import parse_iso, utcnow
from relay.history.formats import FORMATS, MEDIA_TYPES
from relay.history.service import TooManyExports
from relay.representation import alert_json
from relay.rest.base import ApiError, ApiHandler
from relay.store import AlertFilter, Review
from relay.store.alerts import MAX_REVIEWED_PER_CALL
from relay.wire import SEVERITIES, is_url_safe_id

log = logging.getLogger("relay.rest")

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_FILTER_CHARS = 200
FILTER_ARGUMENTS = (
    *("streamId", "severity", "since", "until", "objectType", "q", "reviewed", "falsePositive"),
    *("minConfidence", "maxConfidence"),
)
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_NUMBER_FIELDS = frozenset({"minConfidence", "maxConfidence"})
"""The filter fields a JSON filter may give as numbers."""
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
        arguments = {name: self.get_query_arguments(name) for name in FILTER_ARGUMENTS}
        return await self.filter_from(arguments)

    async def filter_from(self, arguments: Mapping[str, Sequence[str]]) -> AlertFilter:
        """The caller's filter from its arguments as text (query arguments, or a body's fields as text)."""

        def one(name: str) -> str | None:
            values = arguments.get(name) or []
            return values[-1] if values else None

        stream_ids = list(arguments.get("streamId") or [])
        for stream_id in stream_ids:
            if not is_url_safe_id(stream_id) or not await self._owns(stream_id):
                raise ApiError(404, f"stream {stream_id[:64]} not found")
        severities = [part for value in arguments.get("severity") or [] for part in value.split(",") if part]
        unknown = set(severities) - set(SEVERITIES)
        if unknown:
            got = ", ".join(sorted(part[:20] for part in unknown))
            raise ApiError(400, f"severity must be one of {', '.join(SEVERITIES)}; got {got}")
        return AlertFilter(
            user_id=self.user_id,
            stream_ids=stream_ids,
            severities=severities,
            since=_instant("since", one("since")),  # an empty window matches nothing
            until=_instant("until", one("until")),
            object_type=_short_text("objectType", one("objectType")),
            text=_short_text("q", one("q")),
            reviewed=_yes_or_no("reviewed", one("reviewed")),
            false_positive=_yes_or_no("falsePositive", one("falsePositive")),
            min_confidence=_confidence("minConfidence", one("minConfidence")),  # an empty range matches nothing
            max_confidence=_confidence("maxConfidence", one("maxConfidence")),
        )

    async def _owns(self, stream_id: str) -> bool:
        return await self.node.store.streams.owner(stream_id) == self.user_id


def _short_text(name: str, value: str | None) -> str | None:
    value = value or None
    if value is not None and len(value) > MAX_FILTER_CHARS:
        raise ApiError(400, f"{name} may be at most {MAX_FILTER_CHARS} characters")
    return value


def _instant(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_iso(value)
    except ValueError:
        raise ApiError(400, f"{name} must be an ISO 8601 time such as 2026-11-25T20:00:00Z") from None


def _confidence(name: str, value: str | None) -> float | None:
    if not value:  # empty, as any other filter left blank: no bound
        return None
    # A plain decimal number, as JSON writes one: float() also takes "١", "0_5", "inf" and blanks around.
    number = float(value) if len(value) <= 32 and _DECIMAL.fullmatch(value) else math.nan
    if not 0 <= number <= 1:  # NaN and infinities are not in [0, 1] either
        raise ApiError(400, f"{name} must be a number from 0 to 1")
    return number


def _yes_or_no(name: str, value: str | None) -> bool | None:
    if value is None:
        return None
    if value not in ("true", "false"):
        raise ApiError(400, f"{name} must be true or false")
    return value == "true"


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


MAX_NOTE_CHARS = 2000
_REVIEW_FIELDS = ("reviewed", "falsePositive")


class AlertHandler(ApiHandler):
    """``GET /api/alerts/{id}`` (the alert) and ``PATCH /api/alerts/{id}`` (its review)."""

    async def get(self, alert_id: str) -> None:
        alert = await self.node.store.alerts.get(alert_id, self.user_id) if is_url_safe_id(alert_id) else None
        if alert is None:
            raise ApiError(404, f"alert {alert_id[:64]} not found")
        self.send_json(alert_json(alert))

    async def patch(self, alert_id: str) -> None:
        body = self.json_body()
        strangers = sorted(set(body) - {"reviewed", "falsePositive", "keep", "note"})
        if strangers:
            raise ApiError(400, f"unknown field {strangers[0][:64]!r}; send reviewed, falsePositive, keep or note")
        if not body:
            raise ApiError(400, "send at least one of reviewed, falsePositive, keep, note")
        for name in ("reviewed", "falsePositive", "keep"):
            if name in body and not isinstance(body[name], bool):
                raise ApiError(400, f"{name} must be true or false")
        note = body.get("note")
        if note is not None and not (isinstance(note, str) and len(note) <= MAX_NOTE_CHARS and "\x00" not in note):
            raise ApiError(400, f"note must be text of at most {MAX_NOTE_CHARS} characters (or null to clear it)")
        review = Review(
            by=await self.username(),
            reviewed=body.get("reviewed"),
            false_positive=body.get("falsePositive"),
            keep=body.get("keep"),
            note=note,
            clear_note="note" in body and note is None,
        )
        alerts = self.node.store.alerts
        alert = await alerts.review(alert_id, self.user_id, review) if is_url_safe_id(alert_id) else None
        if alert is None:
            raise ApiError(404, f"alert {alert_id[:64]} not found")
        if "reviewed" in body or "falsePositive" in body:
            self.node.announce_reviews([alert])
        self.send_json(alert_json(alert))


class SnapshotHandler(ApiHandler):
    """``GET /api/alerts/{id}/snapshot``: the frame stored with the alert (it never changes: cached)."""

    async def get(self, alert_id: str) -> None:
        jpeg = await self.node.store.alerts.snapshot(alert_id, self.user_id) if is_url_safe_id(alert_id) else None
        if jpeg is None:
            raise ApiError(404, f"alert {alert_id[:64]} has no snapshot, or is not yours")
        self.set_header("Content-Type", "image/jpeg")
        self.set_header("Cache-Control", "private, max-age=86400, immutable")
        self.finish(jpeg)


class ReviewHandler(AlertQueryMixin):
    """``POST /api/alerts/review``: review every alert a filter selects (up to MAX_REVIEWED_PER_CALL)."""

    async def post(self) -> None:
        body = self.json_body()
        strangers = sorted(set(body) - {"filter", *_REVIEW_FIELDS})
        if strangers:
            raise ApiError(400, f"unknown field {strangers[0][:64]!r}; send filter, reviewed, falsePositive")
        changes = {name: body[name] for name in _REVIEW_FIELDS if name in body}
        if not changes or not all(isinstance(value, bool) for value in changes.values()):
            raise ApiError(400, "send reviewed and/or falsePositive, as true or false")
        raw_filter = body.get("filter", {})
        if not isinstance(raw_filter, dict):
            raise ApiError(400, "filter must be an object with the fields of GET /api/alerts")
        where = await self.filter_from(_as_arguments(raw_filter))
        review = Review(
            by=await self.username(),
            reviewed=changes.get("reviewed"),
            false_positive=changes.get("falsePositive"),
        )
        changed, more = await self.node.store.alerts.review_matching(where, review, limit=MAX_REVIEWED_PER_CALL)
        self.node.announce_reviews(changed)
        self.send_json({"updated": len(changed), "more": more})


def _as_arguments(raw: Mapping[str, object]) -> dict[str, list[str]]:
    """A JSON filter as query arguments (text), so that it is read by the one parser of filters."""
    strangers = sorted(set(raw) - set(FILTER_ARGUMENTS))
    if strangers:
        fields = ", ".join(FILTER_ARGUMENTS)
        raise ApiError(400, f"unknown filter field {strangers[0][:64]!r}; the fields are {fields}")
    arguments: dict[str, list[str]] = {}
    for name, value in raw.items():
        values = value if isinstance(value, list) else [value]
        texts = []
        for item in values:
            if isinstance(item, bool):
                texts.append("true" if item else "false")
            elif isinstance(item, str):
                texts.append(item)
            elif isinstance(item, int | float) and name in _NUMBER_FIELDS:
                texts.append(repr(float(item)) if abs(item) < 2**63 else "nan")
            elif item is not None:
                raise ApiError(
                    400, f"filter field {name} must be text, a list of text, a number (confidences) or a boolean"
                )
        arguments[name] = texts
    return arguments
