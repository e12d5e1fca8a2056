"""Ids of users, streams and alerts: random, URL-safe, never reused.

An id is a prefix and 96 random bits (``stream_Zk3…``), so ids can be made on
any node without coordination, cannot be guessed, and use only the URL-safe
characters the contract allows (``[A-Za-z0-9_-]``).
"""

from __future__ import annotations

import secrets


def new_id(prefix: str) -> str:
    """A random URL-safe id such as ``stream_Zk3…`` (96 random bits)."""
    return f"{prefix}_{secrets.token_urlsafe(12)}"
