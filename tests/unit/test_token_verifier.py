"""The token verifier's memory: lookups of one token that overlap are one database lookup."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from relay.identity.credentials import token_hash
from relay.identity.tokens import TokenVerifier
from relay.store import Users


class SlowUsers:
    """A user table whose lookups wait until the test lets them answer."""

    def __init__(self) -> None:
        self.lookups = 0
        self.answer = asyncio.Event()
        self.fail: Exception | None = None

    async def user_for_token(self, token: str) -> str | None:
        self.lookups += 1
        await self.answer.wait()
        if self.fail is not None:
            raise self.fail
        return "u1" if token == "good" else None


def verifier(users: SlowUsers, **kwargs: Any) -> TokenVerifier:
    return TokenVerifier(cast(Users, users), **kwargs)


async def test_a_storm_of_one_token_asks_the_database_once() -> None:
    users = SlowUsers()
    tokens = verifier(users)
    waiting = [asyncio.ensure_future(tokens.user_id("good")) for _ in range(50)]
    await asyncio.sleep(0)
    users.answer.set()
    assert await asyncio.gather(*waiting) == ["u1"] * 50
    assert users.lookups == 1
    assert await tokens.user_id("good") == "u1"
    assert users.lookups == 1  # remembered


async def test_unknown_tokens_are_asked_again_each_time() -> None:
    users = SlowUsers()
    users.answer.set()
    tokens = verifier(users)
    assert await tokens.user_id("bad") is None
    assert await tokens.user_id("bad") is None
    assert users.lookups == 2


async def test_one_cancelled_caller_does_not_cancel_the_others() -> None:
    users = SlowUsers()
    tokens = verifier(users)
    first = asyncio.ensure_future(tokens.user_id("good"))
    second = asyncio.ensure_future(tokens.user_id("good"))
    await asyncio.sleep(0)
    first.cancel()
    users.answer.set()
    assert await second == "u1"
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_a_failed_lookup_fails_every_caller_and_is_not_remembered() -> None:
    users = SlowUsers()
    users.fail = ConnectionError("database gone")
    tokens = verifier(users)
    waiting = [asyncio.ensure_future(tokens.user_id("good")) for _ in range(3)]
    await asyncio.sleep(0)
    users.answer.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(result, ConnectionError) for result in results)
    users.fail = None
    assert await tokens.user_id("good") == "u1"
    assert users.lookups == 2


class RevocableUsers(SlowUsers):
    """A user table that reads the token when asked, and answers when the test lets it."""

    def __init__(self) -> None:
        super().__init__()
        self.revoked = False
        self.read = asyncio.Event()

    async def user_for_token(self, token: str) -> str | None:
        self.lookups += 1
        user_id = "u1" if token == "good" and not self.revoked else None
        self.read.set()
        await self.answer.wait()
        return user_id


async def test_a_token_revoked_during_a_lookup_is_not_trusted_on_its_answer() -> None:
    """Who asks after the revocation asks the database; the answer read before it is not remembered."""
    users = RevocableUsers()
    tokens = verifier(users)
    before = asyncio.ensure_future(tokens.user_id("good"))
    await users.read.wait()
    users.revoked = True
    tokens.forget([token_hash("good")])
    after = asyncio.ensure_future(tokens.user_id("good"))
    await asyncio.sleep(0)
    users.answer.set()
    assert await before == "u1"  # asked before the revocation
    assert await after is None
    assert await tokens.user_id("good") is None
    assert users.lookups == 3
