"""``POST /api/streams/register`` and ``GET /api/streams/list``."""

from __future__ import annotations

import orjson

from relay.representation import stream_json
from relay.rest.base import ApiError, ApiHandler
from relay.wire import json_problem, text_problem

MAX_NAME_CHARS = 200
MAX_METADATA_BYTES = 16 * 1024


class RegisterHandler(ApiHandler):
    async def post(self) -> None:
        body = self.json_body()
        device_name = body.get("deviceName")
        device_type = body.get("deviceType", "mobile")
        metadata = body.get("metadata", {})
        if metadata is None:
            metadata = {}
        if not isinstance(device_name, str) or not device_name.strip() or len(device_name) > MAX_NAME_CHARS:
            raise ApiError(400, f"deviceName must be a non-empty string of at most {MAX_NAME_CHARS} characters")
        if not isinstance(device_type, str) or not device_type.strip() or len(device_type) > 100:
            raise ApiError(400, "deviceType must be a short non-empty string such as 'mobile'")
        if not isinstance(metadata, dict):
            raise ApiError(400, "metadata must be a JSON object")
        problem = (
            text_problem(device_name, "deviceName")
            or text_problem(device_type, "deviceType")
            or json_problem(metadata, "metadata")
        )
        if problem is not None:
            raise ApiError(400, problem)
        if len(orjson.dumps(metadata)) > MAX_METADATA_BYTES:
            raise ApiError(413, f"metadata larger than {MAX_METADATA_BYTES} bytes")
        stream = await self.node.store.streams.register(
            self.user_id, device_name.strip(), device_type.strip(), metadata
        )
        self.send_json({"streamId": stream.id, "message": "Stream registered successfully"}, status=201)


class ListHandler(ApiHandler):
    async def get(self) -> None:
        streams = await self.node.store.streams.for_user(self.user_id)
        self.send_json({"streams": [stream_json(stream) for stream in streams]})
