"""``POST /api/auth/token`` (a username and password for a bearer token) and ``DELETE /api/auth/token``."""

from __future__ import annotations

from relay.rest.base import ApiError, ApiHandler


class TokenHandler(ApiHandler):
    """Logging in needs no token; revoking the token of the call does."""

    public_methods = frozenset({"POST"})

    async def post(self) -> None:
        body = self.json_body()
        username, password = body.get("username"), body.get("password")
        replaces = body.get("replaces")
        if not isinstance(username, str) or not isinstance(password, str) or not username:
            raise ApiError(400, 'send {"username": ..., "password": ...}')
        if len(username) > 150 or len(password) > 1024 or "\x00" in username + password:
            raise ApiError(400, "username or password too long, or with a NUL character")
        if replaces is not None and not (isinstance(replaces, str) and 0 < len(replaces) <= 200):
            raise ApiError(400, "replaces must be the token this one replaces")
        address = self.request.remote_ip or "-"
        wait = self.node.logins.admit(username, address)
        if wait is not None:
            raise ApiError(
                429,
                "too many login attempts for this user or from this address; wait a little",
                headers={"Retry-After": str(round(wait))},
            )
        user = await self.node.store.users.check_password(username, password)
        if user is None:
            raise ApiError(401, "wrong username or password")
        self.node.logins.succeeded(username, address)
        token, replaced = await self.node.store.users.issue_replacing(user.id, replaces)
        if replaced is not None:
            self.node.revoke_tokens([replaced])
        self.send_json({"token": token, "userId": user.id})

    async def delete(self) -> None:
        """Revoke the bearer token this call came with, on every node."""
        if self.token_hash is None:
            raise ApiError(400, "only a bearer token can be revoked: send it in Authorization: Bearer <token>")
        await self.node.store.users.revoke([self.token_hash])
        self.node.revoke_tokens([self.token_hash])
        self.set_status(204)
        self.finish()
