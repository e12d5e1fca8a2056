"""Brokers carry published messages to the hubs of every relay node."""

from __future__ import annotations

from relay.broker.base import Broker, Deliver
from relay.broker.memory import MemoryBroker

__all__ = ["Broker", "Deliver", "MemoryBroker", "broker_for_url", "is_in_process"]


def is_in_process(url: str) -> bool:
    """Whether the broker URL names the in-process broker (one node, nothing shared)."""
    return url in ("", "memory://", "memory")


def broker_for_url(url: str, node_id: str, *, liveness_ttl: float = 6.0) -> Broker:
    """The broker a URL names: ``memory://`` (one node) or ``redis://host:port/db``."""
    if is_in_process(url):
        return MemoryBroker()
    if url.startswith(("redis://", "rediss://", "unix://")):
        from relay.broker.redis import RedisBroker

        return RedisBroker(url, node_id, liveness_ttl=liveness_ttl)
    raise ValueError(f"unknown broker URL {url!r}: use memory:// or redis://host:port/db")
