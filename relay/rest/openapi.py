"""``GET /api/openapi.json``: the OpenAPI 3.1 description of the REST API.

Written by hand, next to the handlers it describes; a test checks that it is a
valid OpenAPI document and that every route the relay serves is in it.
"""

from __future__ import annotations

from typing import Any

from relay import __version__
from relay.history.analytics import QUERIES
from relay.rest.base import ApiHandler
from relay.wire import SEVERITIES, STATUSES


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


_ALERT_FILTERS: list[dict[str, Any]] = [
    {
        "name": "streamId",
        "in": "query",
        "description": "Only these streams (repeatable). Another user's stream answers 404.",
        "schema": {"type": "array", "items": {"type": "string"}},
        "style": "form",
        "explode": True,
    },
    {
        "name": "severity",
        "in": "query",
        "description": "Only these severities (repeatable, or comma-separated).",
        "schema": {"type": "array", "items": {"type": "string", "enum": list(SEVERITIES)}},
        "style": "form",
        "explode": True,
    },
    {
        "name": "since",
        "in": "query",
        "description": "Stored at or after this ISO 8601 time (inclusive).",
        "schema": {"type": "string", "format": "date-time"},
    },
    {
        "name": "until",
        "in": "query",
        "description": "Stored before this ISO 8601 time (exclusive).",
        "schema": {"type": "string", "format": "date-time"},
    },
    {
        "name": "objectType",
        "in": "query",
        "description": "Only alerts whose metadata.objectType equals this.",
        "schema": {"type": "string"},
    },
    {
        "name": "q",
        "in": "query",
        "description": (
            "Only alerts whose message contains this text (case-insensitive). Without three letters or digits "
            "in a row, or with another filter (but a since/until window of up to two days), it is searched "
            "100,000 alerts back per page: a page may then hold fewer alerts than limit, even none; follow "
            "nextCursor until it is null."
        ),
        "schema": {"type": "string"},
    },
    {
        "name": "reviewed",
        "in": "query",
        "description": "Only reviewed (true) or not yet reviewed (false) alerts.",
        "schema": {"type": "string", "enum": ["true", "false"]},
    },
    {
        "name": "falsePositive",
        "in": "query",
        "description": "Only alerts marked (true) or not marked (false) a false positive.",
        "schema": {"type": "string", "enum": ["true", "false"]},
    },
    {
        "name": "minConfidence",
        "in": "query",
        "description": "Only alerts whose metadata.confidence is a number at least this (inclusive).",
        "schema": {"type": "number", "minimum": 0, "maximum": 1},
    },
    {
        "name": "maxConfidence",
        "in": "query",
        "description": "Only alerts whose metadata.confidence is a number at most this (inclusive).",
        "schema": {"type": "number", "minimum": 0, "maximum": 1},
    },
]

_SEVERITY = "|".join(SEVERITIES)
_NO_NUL = "^[^\\u0000]*$"
_BLANK = "\\t\\n\\u000b\\f\\r\\u001c-\\u001f \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
"""What Python's str.strip() takes away, spelled out (ECMA-262's \\s differs)."""
_PRINTED_TEXT = f"^[^\\u0000]*[^\\u0000{_BLANK}][^\\u0000]*$"  # not only blanks, and no NUL
"""JSON Schema patterns (ECMA-262) of the text the relay stores."""

_STANDARD_ERRORS = {
    "401": _error("No bearer token, or an unknown one."),
    "429": _error("Too many requests from this user."),
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Vigil Relay",
        "version": __version__,
        "description": (
            "Live camera feeds to ML services and analysts, alerts back. The WebSocket protocol at "
            "/api/streams/ws is described in docs/API.md."
        ),
    },
    "servers": [{"url": "/"}],
    "security": [{"bearer": []}],
    "paths": {
        "/api/auth/token": {
            "post": {
                "summary": "Trade a username and password for a new bearer token",
                "security": [],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("Credentials")}},
                },
                "responses": {
                    "200": _json(_ref("IssuedToken"), "A new token."),
                    "400": _error("Missing username or password."),
                    "401": _error("Wrong username or password."),
                    "429": _error(
                        "Too many attempts from this address or for this username; Retry-After says when to retry."
                    ),
                },
            },
            "delete": {
                "summary": "Revoke the bearer token of this call, on every node within a second",
                "description": (
                    "WebSocket sessions authenticated with it are closed with 1008 'token revoked'; "
                    "the caller's other tokens keep working."
                ),
                "responses": {
                    "204": {"description": "Revoked."},
                    "400": _error("The call was not made with a bearer token."),
                    **_STANDARD_ERRORS,
                },
            },
        },
        "/api/streams/register": {
            "post": {
                "summary": "Register a video stream of the caller",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("StreamRegistration")}},
                },
                "responses": {
                    "201": _json(_ref("StreamRegistered"), "The new stream's id."),
                    "400": _error("Invalid body."),
                    "413": _error("Body or metadata too large."),
                    **_STANDARD_ERRORS,
                },
            }
        },
        "/api/streams/list": {
            "get": {
                "summary": "The caller's streams, oldest first",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["streams"],
                            "properties": {"streams": {"type": "array", "items": _ref("Stream")}},
                        },
                        "The streams.",
                    ),
                    **_STANDARD_ERRORS,
                },
            }
        },
        "/api/streams/{stream_id}": {
            "parameters": [{"name": "stream_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "patch": {
                "summary": "Rename one of the caller's streams and/or replace its metadata",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("StreamChange")}},
                },
                "responses": {
                    "200": _json(_ref("Stream"), "The stream as it is now, as GET /api/streams/list lists it."),
                    "400": _error("Invalid body: an unknown field, no field, or a value a registration refuses."),
                    "404": _error("No such stream of the caller's."),
                    "413": _error("Body or metadata too large."),
                    **_STANDARD_ERRORS,
                },
            },
            "delete": {
                "summary": "Delete one of the caller's streams with its alerts and their snapshots",
                "description": (
                    'Its connected producer and consumers, on every node, get {"type": "stream-deleted"} '
                    "and stay connected; frames and alerts for it are refused (forbidden) from then on."
                ),
                "responses": {
                    "204": {"description": "Deleted."},
                    "404": _error("No such stream of the caller's."),
                    **_STANDARD_ERRORS,
                },
            },
        },
        "/api/alerts": {
            "get": {
                "summary": "Alert history of the caller's streams, newest first, paged by cursor",
                "parameters": [
                    *_ALERT_FILTERS,
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
                    },
                    {
                        "name": "cursor",
                        "in": "query",
                        "description": "The nextCursor of the previous page.",
                        "schema": {"type": "string"},
                    },
                ],
                "responses": {
                    "200": _json(_ref("AlertPage"), "One page of alerts."),
                    "400": _error("Invalid filter, limit or cursor."),
                    "404": _error("A streamId that is not the caller's."),
                    **_STANDARD_ERRORS,
                },
            }
        },
        "/api/alerts/export": {
            "get": {
                "summary": "Every alert matching the filters, as a file (oldest first)",
                "parameters": [
                    {
                        "name": "format",
                        "in": "query",
                        "schema": {"type": "string", "enum": ["parquet", "csv", "json"], "default": "json"},
                    },
                    *_ALERT_FILTERS,
                ],
                "responses": {
                    "200": {
                        "description": "The file, as an attachment.",
                        "content": {
                            "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
                            "text/csv": {"schema": {"type": "string"}},
                            "application/json": {"schema": {"type": "array", "items": _ref("Alert")}},
                        },
                    },
                    "400": _error("Invalid filter or format."),
                    "404": _error("A streamId that is not the caller's."),
                    **_STANDARD_ERRORS,
                },
            }
        },
        "/api/alerts/review": {
            "post": {
                "summary": "Review every alert a filter selects (at most 5,000 per call)",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {
                                    "filter": _ref("AlertFilter"),
                                    "reviewed": {"type": "boolean"},
                                    "falsePositive": {"type": "boolean"},
                                },
                                "anyOf": [{"required": ["reviewed"]}, {"required": ["falsePositive"]}],
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["updated", "more"],
                            "properties": {
                                "updated": {"type": "integer", "minimum": 0},
                                "more": {"type": "boolean", "description": "More alerts would change: call again."},
                            },
                        },
                        "How many alerts changed (each is announced as alert-updated).",
                    ),
                    "400": _error("Invalid body or filter."),
                    "404": _error("A streamId that is not the caller's."),
                    "413": _error("Body too large."),
                    **_STANDARD_ERRORS,
                },
            }
        },
        "/api/alerts/{alert_id}": {
            "parameters": [{"name": "alert_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "get": {
                "summary": "One of the caller's alerts",
                "responses": {
                    "200": _json(_ref("Alert"), "The alert, as GET /api/alerts lists it."),
                    "404": _error("No such alert of the caller's."),
                    **_STANDARD_ERRORS,
                },
            },
            "patch": {
                "summary": "Review an alert: reviewed, falsePositive, keep, note",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("AlertReviewChange")}},
                },
                "responses": {
                    "200": _json(
                        _ref("Alert"), "The alert as it is now (a review change is announced as alert-updated)."
                    ),
                    "400": _error("Invalid body."),
                    "404": _error("No such alert of the caller's."),
                    "413": _error("Body too large."),
                    **_STANDARD_ERRORS,
                },
            },
        },
        "/api/alerts/{alert_id}/snapshot": {
            "get": {
                "summary": "The frame stored with the alert (JPEG; cached by the browser)",
                "parameters": [{"name": "alert_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {
                    "200": {
                        "description": "The JPEG.",
                        "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
                    },
                    "404": _error("No snapshot, or no such alert of the caller's."),
                    **_STANDARD_ERRORS,
                },
            }
        },
        "/api/alerts/report": {
            "get": {
                "summary": "An HTML report of the alerts matching the filters (self-contained: it opens offline)",
                "description": (
                    "The period's summary, the analytics charts, the unusual hours and the latest high and critical "
                    "alerts, drawn from the answers of /api/analytics/{name} after the analytics copy is brought up "
                    "to date."
                ),
                "parameters": _ALERT_FILTERS,
                "responses": {
                    "200": {
                        "description": "The report, as an attachment.",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    },
                    "400": _error("Invalid filter."),
                    "404": _error("A streamId that is not the caller's."),
                    **_STANDARD_ERRORS,
                },
            }
        },
        "/api/analytics/{name}": {
            "get": {
                "summary": "A named analytics query over the caller's alerts (DuckDB over the analytics copy)",
                "description": (
                    "The copy is brought up to date every RELAY_ANALYTICS_REFRESH seconds and by POST "
                    "/api/analytics/refresh; the X-Analytics-As-Of header says when this node last did. "
                    + " ".join(f"{query.name}: {query.description}" for query in QUERIES.values())
                ),
                "parameters": [
                    {
                        "name": "name",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "enum": list(QUERIES)},
                    },
                    *_ALERT_FILTERS,
                ],
                "responses": {
                    "200": _json(_ref("AnalyticsAnswer"), "The query's columns and rows (times as ISO 8601 UTC)."),
                    "400": _error("Invalid filter."),
                    "404": _error("An unknown query name, or a streamId that is not the caller's."),
                    **_STANDARD_ERRORS,
                },
            }
        },
        "/api/analytics/refresh": {
            "post": {
                "summary": "Bring the analytics copy up to date now (waits for a run already under way)",
                "responses": {
                    "200": _json(_ref("AnalyticsRefreshed"), "What the run wrote."),
                    **_STANDARD_ERRORS,
                },
            }
        },
        "/api/health": {
            "get": {
                "summary": "Whether this relay node is up and reaches its database",
                "security": [],
                "responses": {
                    "200": _json(
                        {"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}},
                        "Up.",
                    ),
                    "503": _error("The database is unreachable."),
                },
            }
        },
        "/api/metrics": {
            "get": {
                "summary": "Counters of this relay node since it started (frames, alerts, connections)",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["uptimeSeconds", "connections", "frames", "alerts"],
                            "properties": {
                                "uptimeSeconds": {"type": "number"},
                                "connections": {
                                    "type": "object",
                                    "properties": {"open": {"type": "integer"}, "opened": {"type": "integer"}},
                                },
                                "frames": {
                                    "type": "object",
                                    "properties": {
                                        "received": {"type": "integer"},
                                        "delivered": {"type": "integer"},
                                        "dropped": {"type": "integer"},
                                        "conversions": {
                                            "type": "integer",
                                            "description": "Frames converted between the JSON and binary forms.",
                                        },
                                    },
                                },
                                "alerts": {"type": "object", "properties": {"stored": {"type": "integer"}}},
                            },
                        },
                        "The counters.",
                    ),
                    **_STANDARD_ERRORS,
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Counters and gauges of this relay node in the Prometheus text format",
                "description": "Needs no token: bind the relay privately or keep /metrics behind the proxy.",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The metrics (docs/DEPLOYMENT.md lists them).",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/api/openapi.json": {
            "get": {
                "summary": "This document",
                "security": [],
                "responses": {"200": {"description": "The OpenAPI document.", "content": {"application/json": {}}}},
            }
        },
        "/api/streams/ws": {
            "get": {
                "summary": "WebSocket upgrade for frames, alerts and status (protocol in docs/API.md)",
                "description": (
                    'Authenticate with the Authorization header, ?token=, a first {"type": "auth"} message, or the '
                    "token field of the first register/subscribe. Failed authentication closes with 1008."
                ),
                "security": [{"bearer": []}, {"queryToken": []}, {}],
                "responses": {
                    "101": {"description": "Switching to the WebSocket protocol."},
                    "400": _error("A WebSocket handshake with a missing or wrong Sec-WebSocket-Key or -Version."),
                    "403": _error("A browser whose Origin is neither this site nor an allowed origin."),
                    "426": _error("Not a WebSocket upgrade (no `Upgrade: websocket`); the answer says so."),
                    "429": _error(
                        "No credentials in the upgrade and too many connections (from this address, or in all) "
                        "already waiting to authenticate; Retry-After: 1."
                    ),
                    "503": _error("The relay is starting; try again in a moment."),
                },
            }
        },
    },
    "components": {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "queryToken": {"type": "apiKey", "in": "query", "name": "token"},
        },
        "schemas": {
            "JsonObject": {
                "description": (
                    "Any JSON object up to 16 KB (413 beyond) that every reader can write back: nested at most "
                    "32 levels, numbers under 2^63 in magnitude, no NUL character in a key or a string."
                ),
                "type": "object",
                "propertyNames": {"pattern": _NO_NUL},
                "additionalProperties": {"$ref": "#/components/schemas/JsonValue"},
            },
            "JsonValue": {
                "anyOf": [
                    {"type": "null"},
                    {"type": "boolean"},
                    {"type": "number", "exclusiveMinimum": -(2**63), "exclusiveMaximum": 2**63},
                    {"type": "string", "pattern": _NO_NUL},
                    {"type": "array", "items": {"$ref": "#/components/schemas/JsonValue"}},
                    {"$ref": "#/components/schemas/JsonObject"},
                ]
            },
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                    }
                },
            },
            "Credentials": {
                "type": "object",
                "required": ["username", "password"],
                "properties": {
                    "username": {"type": "string", "minLength": 1, "maxLength": 150, "pattern": _NO_NUL},
                    "password": {"type": "string", "maxLength": 1024, "pattern": _NO_NUL},
                    "replaces": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 200,
                        "description": "A token of this user that the new one replaces: it is revoked (if it "
                        "still exists and is theirs), so that logging in again does not pile tokens up.",
                    },
                },
            },
            "IssuedToken": {
                "type": "object",
                "required": ["token", "userId"],
                "properties": {"token": {"type": "string"}, "userId": {"type": "string"}},
            },
            "StreamRegistration": {
                "type": "object",
                "required": ["deviceName"],
                "properties": {
                    "deviceName": {"type": "string", "maxLength": 200, "pattern": _PRINTED_TEXT},
                    "deviceType": {"type": "string", "maxLength": 100, "pattern": _PRINTED_TEXT, "default": "mobile"},
                    "metadata": {"anyOf": [{"$ref": "#/components/schemas/JsonObject"}, {"type": "null"}]},
                },
            },
            "StreamChange": {
                "type": "object",
                "additionalProperties": False,
                "minProperties": 1,
                "properties": {
                    "deviceName": {"type": "string", "maxLength": 200, "pattern": _PRINTED_TEXT},
                    "metadata": {
                        "anyOf": [{"$ref": "#/components/schemas/JsonObject"}, {"type": "null"}],
                        "description": "Replaces the metadata as a whole (null: {}).",
                    },
                },
            },
            "StreamRegistered": {
                "type": "object",
                "required": ["streamId", "message"],
                "properties": {"streamId": {"type": "string"}, "message": {"type": "string"}},
            },
            "Stream": {
                "type": "object",
                "required": ["id", "deviceName", "deviceType", "status", "lastSeen", "metadata", "createdAt"],
                "properties": {
                    "id": {"type": "string"},
                    "deviceName": {"type": "string"},
                    "deviceType": {"type": "string"},
                    "status": {"type": "string", "enum": list(STATUSES)},
                    "lastSeen": {"type": ["string", "null"], "format": "date-time"},
                    "metadata": {"type": "object"},
                    "createdAt": {"type": "string", "format": "date-time"},
                },
            },
            "AnalyticsAnswer": {
                "type": "object",
                "required": ["query", "columns", "rows"],
                "properties": {
                    "query": {"type": "string", "enum": list(QUERIES)},
                    "columns": {"type": "array", "items": {"type": "string"}},
                    "rows": {"type": "array", "items": {"type": "array"}},
                },
            },
            "AnalyticsRefreshed": {
                "type": "object",
                "required": ["refreshedAt", "daysWritten", "alertsWritten"],
                "properties": {
                    "refreshedAt": {"type": "string", "format": "date-time"},
                    "daysWritten": {"type": "array", "items": {"type": "string", "format": "date"}},
                    "alertsWritten": {"type": "integer", "minimum": 0},
                },
            },
            "Alert": {
                "type": "object",
                "required": [
                    *("id", "streamId", "severity", "message", "metadata", "timestamp", "createdAt"),
                    *("hasSnapshot", "reviewed", "falsePositive", "keep"),
                ],
                "properties": {
                    "id": {"type": "string"},
                    "streamId": {"type": "string"},
                    "severity": {"type": "string", "enum": list(SEVERITIES)},
                    "message": {"type": "string"},
                    "metadata": {"type": "object"},
                    "timestamp": {"type": "integer", "description": "Event time, ms since the epoch."},
                    "createdAt": {"type": "string", "format": "date-time"},
                    "ref": {"type": "string", "description": "The sender's reference, if it gave one."},
                    "frameTimestamp": {"type": "integer", "description": "The timestamp of the frame it is about."},
                    "hasSnapshot": {"type": "boolean", "description": "Whether GET /api/alerts/{id}/snapshot has it."},
                    "reviewed": {"type": "boolean"},
                    "falsePositive": {"type": "boolean"},
                    "reviewedBy": {"type": "string", "description": "Who last set reviewed or falsePositive."},
                    "reviewedAt": {"type": "string", "format": "date-time"},
                    "keep": {"type": "boolean", "description": "Kept whatever the retention."},
                    "note": {"type": "string"},
                },
            },
            "AlertReviewChange": {
                "type": "object",
                "additionalProperties": False,
                "minProperties": 1,
                "properties": {
                    "reviewed": {"type": "boolean"},
                    "falsePositive": {"type": "boolean", "description": "true also marks the alert reviewed."},
                    "keep": {"type": "boolean"},
                    "note": {"type": ["string", "null"], "maxLength": 2000, "pattern": _NO_NUL},
                },
            },
            "AlertFilter": {
                "type": "object",
                "additionalProperties": False,
                "description": "The filters of GET /api/alerts, as JSON.",
                "properties": {
                    "streamId": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
                    "severity": {
                        "oneOf": [
                            {"type": "string", "pattern": f"^({_SEVERITY})(,({_SEVERITY}))*$"},
                            {"type": "array", "items": {"type": "string", "enum": list(SEVERITIES)}},
                        ],
                        "description": "One severity, several comma-separated, or a list.",
                    },
                    "since": {"type": "string", "format": "date-time"},
                    "until": {"type": "string", "format": "date-time"},
                    "objectType": {"type": "string", "maxLength": 200},
                    "q": {"type": "string", "maxLength": 200},
                    "reviewed": {"type": "boolean"},
                    "falsePositive": {"type": "boolean"},
                    "minConfidence": {"type": "number", "minimum": 0, "maximum": 1},
                    "maxConfidence": {"type": "number", "minimum": 0, "maximum": 1},
                },
            },
            "AlertPage": {
                "type": "object",
                "required": ["alerts", "nextCursor"],
                "properties": {
                    "alerts": {"type": "array", "items": _ref("Alert")},
                    "nextCursor": {"type": ["string", "null"]},
                },
            },
        },
    },
}


class OpenApiHandler(ApiHandler):
    requires_auth = False

    def get(self) -> None:
        self.send_json(DOCUMENT)
