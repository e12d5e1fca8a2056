"""``POST /api/streams/register``, ``GET /api/streams/list``, ``PATCH`` and ``DELETE /api/streams/{id}``.

A rename or new metadata is held to exactly the bounds a registration is, by
the same functions.
"""

from __future__ import annotations

from typing import Any

import orjson

from relay.representation import stream_json
from relay.rest.base import ApiError, ApiHandler
from relay.wire import is_url_safe_id, json_problem, text_problem

MAX_NAME_CHARS = 200
MAX_METADATA_BYTES = 16 * 1024
_EDITABLE = ("deviceName", "metadata")


def device_name_of(value: object) -> str:
    """A valid ``deviceName``, stripped, or a 400."""
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME_CHARS:
        raise ApiError(400, f"deviceName must be a non-empty string of at most {MAX_NAME_CHARS} characters")
    problem = text_problem(value, "deviceName")
    if problem is not None:
        raise ApiError(400, problem)
    return value.strip()


def metadata_of(value: object) -> dict[str, Any]:
    """Valid stream ``metadata`` (null is ``{}``), or a 400 (413 when too large)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ApiError(400, "metadata must be a JSON object")
    problem = json_problem(value, "metadata")
    if problem is not None:
        raise ApiError(400, problem)
    if len(orjson.dumps(value)) > MAX_METADATA_BYTES:
        raise ApiError(413, f"metadata larger than {MAX_METADATA_BYTES} bytes")
    return value


class RegisterHandler(ApiHandler):
    async def post(self) -> None:
        body = self.json_body()
        device_name = device_name_of(body.get("deviceName"))
        device_type = body.get("deviceType", "mobile")
        if not isinstance(device_type, str) or not device_type.strip() or len(device_type) > 100:
            raise ApiError(400, "deviceType must be a short non-empty string such as 'mobile'")
        problem = text_problem(device_type, "deviceType")
        if problem is not None:
            raise ApiError(400, problem)
        metadata = metadata_of(body.get("metadata", {}))
        stream = await self.node.store.streams.register(self.user_id, device_name, device_type.strip(), metadata)
        self.send_json({"streamId": stream.id, "message": "Stream registered successfully"}, status=201)


class ListHandler(ApiHandler):
    async def get(self) -> None:
        streams = await self.node.store.streams.for_user(self.user_id)
        self.send_json({"streams": [stream_json(stream) for stream in streams]})


class StreamHandler(ApiHandler):
    """``PATCH /api/streams/{id}`` (rename, new metadata) and ``DELETE /api/streams/{id}`` (with its alerts)."""

    async def patch(self, stream_id: str) -> None:
        body = self.json_body()
        strangers = sorted(set(body) - set(_EDITABLE))
        if strangers:
            raise ApiError(400, f"unknown field {strangers[0][:64]!r}; send deviceName and/or metadata")
        if not body:
            raise ApiError(400, "send deviceName and/or metadata")
        device_name = device_name_of(body["deviceName"]) if "deviceName" in body else None
        metadata = metadata_of(body["metadata"]) if "metadata" in body else None
        stream = None
        if is_url_safe_id(stream_id):
            stream = await self.node.store.streams.update(
                stream_id, self.user_id, device_name=device_name, metadata=metadata
            )
        if stream is None:
            raise ApiError(404, f"stream {stream_id[:64]} not found")
        self.send_json(stream_json(stream))

    async def delete(self, stream_id: str) -> None:
        if not (is_url_safe_id(stream_id) and await self.node.delete_stream(stream_id, self.user_id)):
            raise ApiError(404, f"stream {stream_id[:64]} not found")
        self.set_status(204)
        self.finish()
