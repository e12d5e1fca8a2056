"""Brokers carry published messages to the hubs of every relay node."""

from __future__ import annotations

from relay.broker.base import Broker, Deliver
from relay.broker.memory import MemoryBroker

__all__ = ["Broker", "Deliver", "MemoryBroker", "broker_for_url"]


def broker_for_url(url: str, node_id: str) -> Broker:
    """The broker a URL names: ``memory://`` (one node) or ``redis://host:port/db``."""
    if url in ("", "memory://", "memory"):
        return MemoryBroker()
    if url.startswith(("redis://", "rediss://", "unix://")):
        from relay.broker.redis import RedisBroker

        return RedisBroker(url, node_id)
    raise ValueError(f"unknown broker URL {url!r}: use memory:// or redis://host:port/db")
