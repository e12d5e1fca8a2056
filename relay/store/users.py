"""Users and their bearer tokens.

A token is stored as its SHA-256 hash and its first characters (its
*prefix*, to tell tokens apart in ``relay tokens list``); revoking a token
deletes its row.  Relays notice within a second (:class:`relay.identity.tokens.TokenVerifier`
and the node's token watch).
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from typing import Final

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relay.clock import utcnow
from relay.identity.credentials import hash_password, new_token, token_hash, token_prefix, verify_password
from relay.identity.ids import new_id
from relay.store.models import Alert, AlertSnapshot, ApiToken, User, VideoStream, stored_day

LAST_USED_RESOLUTION: Final = timedelta(minutes=1)
"""``lastUsedAt`` is written when it is older than this: a busy token costs a write a minute, not one per call."""
CHECK_BATCH: Final = 500


@cache
def _dummy_hash() -> str:
    """A fixed scrypt hash to verify against when the user does not exist, so that a wrong username
    costs as long as a wrong password and does not reveal itself.  Made on the first such login, not
    at import: every ``relay`` command and test process imports this module (a hash is ~50 ms)."""
    return hash_password("not a password anyone uses")


def _verify(password: str, stored: str | None) -> bool:
    return verify_password(password, stored or _dummy_hash())


@dataclass(frozen=True, slots=True)
class NewToken:
    user_id: str
    username: str
    token: str
    created_user: bool


@dataclass(frozen=True, slots=True)
class UserSummary:
    """A user as ``relay users list`` shows them."""

    id: str
    username: str
    created_at: datetime
    tokens: int
    streams: int


@dataclass(frozen=True, slots=True)
class TokenSummary:
    """A token as ``relay tokens list`` shows it: never the token itself."""

    id: int
    token_hash: str
    prefix: str | None
    created_at: datetime
    last_used_at: datetime | None


@dataclass(frozen=True, slots=True)
class Removed:
    """What removing a user deleted, and the UTC days their alerts were stored on (for the analytics copy)."""

    token_hashes: list[str]
    streams: int
    alerts: int
    days: list[date]


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
                session.add(_token_row(user.id, token))
                try:
                    await session.commit()
                except IntegrityError:  # created concurrently by another process: use theirs
                    await session.rollback()
                    continue
                return NewToken(user.id, user.username, token, created)
        raise RuntimeError(f"could not create user {username!r}")

    async def issue_token(self, user_id: str) -> str:
        """A new token for the user."""
        token, _ = await self.issue_replacing(user_id, None)
        return token

    async def issue_replacing(self, user_id: str, replaces: str | None) -> tuple[str, str | None]:
        """A new token for the user, and the hash of the token it replaces (revoked in the same transaction).

        ``replaces`` is a token the caller held; it is revoked only if it is
        this user's (otherwise, say one revoked already, nothing happens), so
        a client that logs in again does not pile tokens up.
        """
        token = new_token()
        replaced: str | None = None
        async with self._sessions() as session:
            if replaces is not None:
                gone = await session.execute(
                    delete(ApiToken)
                    .where(and_(ApiToken.token_hash == token_hash(replaces), ApiToken.user_id == user_id))
                    .returning(ApiToken.token_hash)
                )
                replaced = gone.scalar()
            session.add(_token_row(user_id, token))
            await session.commit()
        return token, replaced

    async def user_for_token(self, token: str) -> str | None:
        """The id of the user a bearer token belongs to, or None.  Notes when it was used (to the minute)."""
        digest = token_hash(token)
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(ApiToken.user_id, ApiToken.token_hash, ApiToken.last_used_at).where(
                        ApiToken.token_hash == digest
                    )
                )
            ).first()
            if row is None or not hmac.compare_digest(row.token_hash, digest):
                return None
            now = utcnow()
            if row.last_used_at is None or row.last_used_at < now - LAST_USED_RESOLUTION:
                await session.execute(update(ApiToken).where(ApiToken.token_hash == digest).values(last_used_at=now))
                await session.commit()
        return str(row.user_id)

    async def existing_tokens(self, token_hashes: Iterable[str]) -> set[str]:
        """Which of these token hashes still name a token (the rest were revoked)."""
        hashes = list(token_hashes)
        found: set[str] = set()
        for start in range(0, len(hashes), CHECK_BATCH):
            async with self._sessions() as session:
                batch = hashes[start : start + CHECK_BATCH]
                found.update(await session.scalars(select(ApiToken.token_hash).where(ApiToken.token_hash.in_(batch))))
        return found

    async def existing_users(self, user_ids: Iterable[str]) -> set[str]:
        """Which of these user ids still name a user (the rest were removed)."""
        ids = list(user_ids)
        found: set[str] = set()
        for start in range(0, len(ids), CHECK_BATCH):
            async with self._sessions() as session:
                found.update(
                    await session.scalars(select(User.id).where(User.id.in_(ids[start : start + CHECK_BATCH])))
                )
        return found

    async def revoke(self, token_hashes: Iterable[str]) -> list[str]:
        """Delete these tokens; the hashes of those that existed."""
        hashes = list(token_hashes)
        if not hashes:
            return []
        async with self._sessions() as session:
            gone = await session.scalars(
                delete(ApiToken).where(ApiToken.token_hash.in_(hashes)).returning(ApiToken.token_hash)
            )
            revoked = list(gone)
            await session.commit()
        return revoked

    async def revoke_all(self, user_id: str) -> list[str]:
        """Delete every token of the user; their hashes."""
        async with self._sessions() as session:
            gone = await session.scalars(
                delete(ApiToken).where(ApiToken.user_id == user_id).returning(ApiToken.token_hash)
            )
            revoked = list(gone)
            await session.commit()
        return revoked

    async def tokens_of(self, user_id: str) -> list[TokenSummary]:
        """The user's tokens, oldest first."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.created_at, ApiToken.id)
            )
            return [TokenSummary(row.id, row.token_hash, row.prefix, row.created_at, row.last_used_at) for row in rows]

    async def tokens_with_prefix(self, prefix: str) -> list[TokenSummary]:
        """Every token (of anyone) whose prefix starts with ``prefix``, or that ``prefix`` is, whole."""
        short = prefix.removeprefix("vr_")
        pattern = short.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        async with self._sessions() as session:
            rows = await session.scalars(
                select(ApiToken).where(
                    or_(ApiToken.prefix.like(pattern, escape="\\"), ApiToken.token_hash == token_hash(prefix))
                )
            )
            return [TokenSummary(row.id, row.token_hash, row.prefix, row.created_at, row.last_used_at) for row in rows]

    async def summaries(self) -> list[UserSummary]:
        """Every user with how many tokens and streams they have, by name."""
        tokens = select(func.count()).where(ApiToken.user_id == User.id).scalar_subquery()
        streams = select(func.count()).where(VideoStream.user_id == User.id).scalar_subquery()
        async with self._sessions() as session:
            rows = await session.execute(
                select(User.id, User.username, User.created_at, tokens, streams).order_by(User.username)
            )
            return [UserSummary(*row) for row in rows]

    async def set_password(self, user_id: str, password: str) -> None:
        """Replace the user's password (their tokens stay valid: ``revoke_all`` for that)."""
        password_hash = await asyncio.get_running_loop().run_in_executor(None, hash_password, password)
        async with self._sessions() as session:
            await session.execute(update(User).where(User.id == user_id).values(password_hash=password_hash))
            await session.commit()

    async def remove(self, user_id: str) -> Removed:
        """Delete the user with their tokens, streams, alerts and snapshots, in one transaction.

        Explicit deletes, child tables first, as :meth:`relay.store.Streams.delete` does.
        """
        async with self._sessions() as session:
            streams = select(VideoStream.id).where(VideoStream.user_id == user_id)
            alerts = select(Alert.id).where(Alert.stream_id.in_(streams))
            day = stored_day(session.get_bind().dialect.name)
            stored_on = await session.scalars(select(day).where(Alert.stream_id.in_(streams)).distinct())
            days = sorted(date.fromisoformat(value) for value in stored_on)
            await session.execute(delete(AlertSnapshot).where(AlertSnapshot.alert_id.in_(alerts)))
            alert_rows = await session.execute(delete(Alert).where(Alert.stream_id.in_(streams)))
            stream_rows = await session.execute(delete(VideoStream).where(VideoStream.user_id == user_id))
            hashes = list(
                await session.scalars(
                    delete(ApiToken).where(ApiToken.user_id == user_id).returning(ApiToken.token_hash)
                )
            )
            await session.execute(delete(User).where(User.id == user_id))
            await session.commit()
        return Removed(hashes, _count(stream_rows), _count(alert_rows), days)

    async def check_password(self, username: str, password: str) -> User | None:
        """The user if ``password`` is theirs; the slow hash runs off the event loop."""
        async with self._sessions() as session:
            user = await session.scalar(select(User).where(User.username == username))
        stored = user.password_hash if user is not None else None
        ok = await asyncio.get_running_loop().run_in_executor(None, _verify, password, stored)
        return user if ok and user is not None and user.password_hash else None

    async def by_id(self, user_id: str) -> User | None:
        async with self._sessions() as session:
            return await session.get(User, user_id)

    async def by_name(self, username: str) -> User | None:
        async with self._sessions() as session:
            return await session.scalar(select(User).where(User.username == username))


def _token_row(user_id: str, token: str) -> ApiToken:
    return ApiToken(user_id=user_id, token_hash=token_hash(token), prefix=token_prefix(token))


def _count(result: object) -> int:
    """Rows a DELETE touched (``CursorResult.rowcount``)."""
    return int(getattr(result, "rowcount", 0) or 0)
