"""The blocking client offers exactly the asyncio client's methods, so the two cannot drift apart.

``BlockingRelayClient`` repeats every signature of ``RelayClient`` (as websockets
repeats its asyncio API in its sync one).  Each public method and property must
exist on both, with the same parameters; the blocking one may add ``timeout``,
and returns plainly what the asyncio one returns from a coroutine, or iterates
where the asyncio one iterates asynchronously.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Any, get_args, get_origin

import pytest

from relay.client import BlockingRelayClient, RelayClient

SYNC_TWINS = {"__aenter__": "__enter__", "__aexit__": "__exit__", "__aiter__": "__iter__"}
"""Async protocol methods and the blocking methods that stand for them."""

BLOCKING_ONLY = {"client", "messages"}
"""The asyncio client underneath, and iteration with a timeout (``async for`` takes ``asyncio.timeout``)."""

SETTINGS = {"endpoints", "frame_format"}
"""Attributes of the asyncio client that only repeat what its constructor was given."""


def public_names(cls: type) -> set[str]:
    return {name for name in vars(cls) if not name.startswith("_")}


def signature(function: Any) -> inspect.Signature:
    return inspect.signature(function, eval_str=True)


def plain(annotation: Any) -> Any:
    """The blocking counterpart of a return type: ``AsyncGenerator[X, None]`` and ``AsyncIterator[X]`` iterate X."""
    if get_origin(annotation) in (AsyncGenerator, AsyncIterator):
        return Iterator[get_args(annotation)[0]]
    return annotation


async def test_both_clients_have_the_same_public_methods_and_properties() -> None:
    client = RelayClient("http://127.0.0.1:1", "vr_token")
    attributes = {name for name in vars(client) if not name.startswith("_")} - SETTINGS
    await client.close()
    assert public_names(BlockingRelayClient) - BLOCKING_ONLY == public_names(RelayClient) | attributes


@pytest.mark.parametrize("name", sorted(public_names(RelayClient) | set(SYNC_TWINS)))
def test_a_blocking_method_takes_what_the_asyncio_one_takes_and_may_add_a_timeout(name: str) -> None:
    asyncio_member = inspect.getattr_static(RelayClient, name)
    blocking_member = inspect.getattr_static(BlockingRelayClient, SYNC_TWINS.get(name, name))
    if isinstance(asyncio_member, property):
        assert isinstance(blocking_member, property)
        assert signature(blocking_member.fget).return_annotation == signature(asyncio_member.fget).return_annotation
        return
    asyncio_signature, blocking_signature = signature(asyncio_member), signature(blocking_member)
    timeout = blocking_signature.parameters.get("timeout")
    if timeout is not None:
        assert (timeout.annotation, timeout.default) == (float | None, None), "timeout=None waits as long as it takes"
    without_timeout = [p for p in blocking_signature.parameters.values() if p.name != "timeout"]
    assert without_timeout == list(asyncio_signature.parameters.values())
    assert blocking_signature.return_annotation == plain(asyncio_signature.return_annotation)
