"""The relay's two endpoints from the one URL a user gives.

Users know "the relay is at http://host:8000"; the WebSocket lives at
``ws://host:8000/api/streams/ws`` and REST under ``http://host:8000/api``.  Either
form (and ``https``/``wss``) is accepted, with or without the WebSocket path.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

WS_PATH = "/api/streams/ws"

_TO_HTTP = {"http": "http", "ws": "http", "https": "https", "wss": "https"}


@dataclass(frozen=True, slots=True)
class Endpoints:
    """``http_base`` (``http://host:port``, prefix of ``/api/...``) and ``ws_url``."""

    http_base: str
    ws_url: str


def endpoints(url: str) -> Endpoints:
    """Both endpoints of the relay at ``url``; ValueError for a URL that is not one."""
    parts = urlsplit(url.strip())
    scheme = _TO_HTTP.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise ValueError(f"relay URL must look like http://host:port (or ws://, https://, wss://), got {url!r}")
    path = parts.path.rstrip("/")
    if path.endswith(WS_PATH):
        path = path[: -len(WS_PATH)]
    http_base = urlunsplit((scheme, parts.netloc, path, "", ""))
    ws_scheme = "wss" if scheme == "https" else "ws"
    return Endpoints(http_base, urlunsplit((ws_scheme, parts.netloc, path + WS_PATH, "", "")))
