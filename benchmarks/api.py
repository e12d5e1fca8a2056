"""The few REST calls the benchmarks make: register a stream, read metrics, check health.

Plain ``urllib`` in a thread: these calls are outside every measured window, so
their speed does not matter, and no HTTP client beyond the standard library is
needed.
"""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from typing import Any

import orjson

TIMEOUT = 5.0


def _call(url: str, token: str | None, body: Any = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = orjson.dumps(body) if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status, orjson.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, None


async def register_stream(base: str, token: str, name: str) -> str:
    """A new stream of the token's user, by ``POST /api/streams/register``; its id."""
    status, body = await asyncio.to_thread(
        _call,
        f"{base}/api/streams/register",
        token,
        {"deviceName": name, "deviceType": "bench", "metadata": {"bench": True}},
    )
    if status != 201 or not isinstance(body, dict) or "streamId" not in body:
        raise RuntimeError(f"registering a stream answered {status} {body}")
    stream_id: str = body["streamId"]
    return stream_id


async def metrics(base: str, token: str) -> dict[str, Any] | None:
    """``GET /api/metrics``, or None for a relay without it (the Node peer)."""
    status, body = await asyncio.to_thread(_call, f"{base}/api/metrics", token)
    return body if status == 200 and isinstance(body, dict) else None


async def healthy(base: str) -> bool:
    """Whether ``GET /api/health`` answers 200."""
    try:
        status, _ = await asyncio.to_thread(_call, f"{base}/api/health", None)
    except OSError:
        return False
    return status == 200
