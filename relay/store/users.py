"""Users and their bearer tokens."""

from __future__ import annotations

import asyncio
import hmac
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relay.identity.credentials import hash_password, new_token, token_hash, verify_password
from relay.identity.ids import new_id
from relay.store.models import ApiToken, User

# A fixed scrypt hash to verify against when the user does not exist, so that a
# wrong username costs as long as a wrong password and does not reveal itself.
_DUMMY_HASH = hash_password("not a password anyone uses")


@dataclass(frozen=True, slots=True)
class NewToken:
    user_id: str
    username: str
    token: str
    created_user: bool


class Users:
    """Queries on ``user`` and ``api_token``."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def add_or_issue_token(self, username: str, password: str | None = None) -> NewToken:
        """Create ``username`` if new (setting ``password`` if given) and issue a new token.

        For an existing user a given password replaces the old one.
        """
        password_hash = None
        if password is not None:
            password_hash = await asyncio.get_running_loop().run_in_executor(None, hash_password, password)
        for _attempt in range(2):
            async with self._sessions() as session:
                user = await session.scalar(select(User).where(User.username == username))
                created = user is None
                if user is None:
                    user = User(id=new_id("user"), username=username, password_hash=password_hash)
                    session.add(user)
                    await session.flush()  # the token's foreign key needs the user row first
                elif password_hash is not None:
                    user.password_hash = password_hash
                token = new_token()
                session.add(ApiToken(user_id=user.id, token_hash=token_hash(token)))
                try:
                    await session.commit()
                except IntegrityError:  # created concurrently by another process: use theirs
                    await session.rollback()
                    continue
                return NewToken(user.id, user.username, token, created)
        raise RuntimeError(f"could not create user {username!r}")

    async def issue_token(self, user_id: str) -> str:
        token = new_token()
        async with self._sessions() as session:
            session.add(ApiToken(user_id=user_id, token_hash=token_hash(token)))
            await session.commit()
        return token

    async def user_for_token(self, token: str) -> str | None:
        """The id of the user a bearer token belongs to, or None."""
        digest = token_hash(token)
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(ApiToken.user_id, ApiToken.token_hash).where(ApiToken.token_hash == digest)
                )
            ).first()
        if row is None or not hmac.compare_digest(row.token_hash, digest):
            return None
        return str(row.user_id)

    async def check_password(self, username: str, password: str) -> User | None:
        """The user if ``password`` is theirs; the slow hash runs off the event loop."""
        async with self._sessions() as session:
            user = await session.scalar(select(User).where(User.username == username))
        stored = user.password_hash if user is not None and user.password_hash else _DUMMY_HASH
        ok = await asyncio.get_running_loop().run_in_executor(None, verify_password, password, stored)
        return user if ok and user is not None and user.password_hash else None

    async def by_id(self, user_id: str) -> User | None:
        async with self._sessions() as session:
            return await session.get(User, user_id)

    async def by_name(self, username: str) -> User | None:
        async with self._sessions() as session:
            return await session.scalar(select(User).where(User.username == username))
