"""``POST /api/auth/token``: trade a username and password for a bearer token."""

from __future__ import annotations

from relay.rest.base import ApiError, ApiHandler


class TokenHandler(ApiHandler):
    requires_auth = False

    async def post(self) -> None:
        body = self.json_body()
        username, password = body.get("username"), body.get("password")
        if not isinstance(username, str) or not isinstance(password, str) or not username:
            raise ApiError(400, 'send {"username": ..., "password": ...}')
        if len(username) > 150 or len(password) > 1024 or "\x00" in username + password:
            raise ApiError(400, "username or password too long, or with a NUL character")
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
        token = await self.node.store.users.issue_token(user.id)
        self.send_json({"token": token, "userId": user.id})
