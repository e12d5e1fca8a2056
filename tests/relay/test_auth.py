"""Authentication in every form the contract allows, and its failures."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus

from tests.support import RelayHarness, Response, running_relay


@pytest.mark.parametrize("how", ["header", "query"])
async def test_token_in_the_upgrade_request(relay: RelayHarness, how: str) -> None:
    user_id, token = await relay.user()
    client = await relay.connect(token, how=how, expect_ok=False)
    await client.expect("auth-ok", userId=user_id)


async def test_token_in_a_first_auth_message(relay: RelayHarness) -> None:
    user_id, token = await relay.user()
    client = await relay.connect(how="none")
    await client.send({"type": "auth", "token": token})
    await client.expect("auth-ok", userId=user_id)


@pytest.mark.parametrize("kind", ["register", "subscribe"])
async def test_token_in_the_first_register_or_subscribe(relay: RelayHarness, kind: str) -> None:
    user_id, token = await relay.user()
    stream_id = await relay.stream(token)
    client = await relay.connect(how="none")
    await client.send({"type": kind, "streamId": stream_id, "token": token})
    await client.expect("auth-ok", userId=user_id)
    await client.expect(f"{kind}ed" if kind == "register" else "subscribed", streamId=stream_id)


async def test_auth_ok_is_sent_once_per_connection(relay: RelayHarness) -> None:
    _, token = await relay.user()
    stream_id = await relay.stream(token)
    client = await relay.connect(token)
    await client.send({"type": "auth", "token": token})
    await client.send({"type": "register", "streamId": stream_id, "token": token})
    await client.expect("registered")


@pytest.mark.parametrize("how", ["header", "query", "message", "register"])
async def test_a_wrong_token_closes_with_1008(relay: RelayHarness, how: str) -> None:
    await relay.user()
    if how in ("header", "query"):
        client = await relay.connect("vr_wrong", how=how, expect_ok=False)
    else:
        client = await relay.connect(how="none")
        if how == "message":
            await client.send({"type": "auth", "token": "vr_wrong"})
        else:
            await client.send({"type": "register", "streamId": "stream_x", "token": "vr_wrong"})
    assert await client.closed() == (1008, "Unauthorized")


async def test_messages_before_auth_are_refused_and_the_session_times_out(database_url: str) -> None:
    async with running_relay(database_url, ping_interval=0, auth_timeout=0.3) as relay:
        client = await relay.connect(how="none")
        await client.send({"type": "subscribe", "streamId": "stream_x"})
        await client.expect("error", code="unauthorized")
        await client.send({"type": "ping"})
        await client.expect("pong")
        assert await client.closed() == (1008, "Unauthorized")


async def test_rest_needs_a_valid_bearer_token(relay: RelayHarness) -> None:
    for headers in ({}, {"Authorization": "Bearer vr_nope"}, {"Authorization": "Basic abc"}):
        response = await relay.api("GET", "/api/streams/list", headers=headers)
        assert response.status == 401
        assert response.json["error"]["code"] == "unauthorized"
        assert response.headers["Content-Type"] == "application/json"


async def test_password_login_issues_a_working_token(relay: RelayHarness) -> None:
    user_id, _ = await relay.user("carol", password="s3cret")
    response = await relay.api("POST", "/api/auth/token", body={"username": "carol", "password": "s3cret"})
    assert response.status == 200
    assert response.json["userId"] == user_id
    token = response.json["token"]
    assert (await relay.api("GET", "/api/streams/list", token=token)).status == 200
    wrong = await relay.api("POST", "/api/auth/token", body={"username": "carol", "password": "nope"})
    assert wrong.status == 401
    nobody = await relay.api("POST", "/api/auth/token", body={"username": "dave", "password": "x"})
    assert nobody.status == 401
    malformed = await relay.api("POST", "/api/auth/token", raw_body=b"{")
    assert malformed.status == 400


async def test_tokens_are_stored_only_as_hashes(relay: RelayHarness) -> None:
    from sqlalchemy import text

    _, token = await relay.user("erin", password="pw")
    async with relay.relay.store.engine.connect() as connection:
        rows = (await connection.execute(text('SELECT "tokenHash" FROM api_token'))).all()
        password_hashes = (await connection.execute(text('SELECT "passwordHash" FROM "user"'))).all()
    assert rows
    assert all(token not in row[0] for row in rows)
    assert password_hashes[0][0].startswith("scrypt$")


async def test_cross_origin_browsers_are_refused_unless_allowed(database_url: str) -> None:
    async with running_relay(database_url, ping_interval=0, allowed_origins=("https://ops.example.com",)) as relay:
        _, token = await relay.user()
        with pytest.raises(InvalidStatus) as refused:
            await relay.connect(token, origin="https://evil.example.com")  # type: ignore[arg-type]
        assert refused.value.response.status_code == 403
        await relay.connect(token, origin="https://ops.example.com")  # type: ignore[arg-type]
        await relay.connect(token, origin=f"http://127.0.0.1:{relay.port}")  # type: ignore[arg-type]


async def test_query_tokens_never_reach_the_log(relay: RelayHarness, caplog: pytest.LogCaptureFixture) -> None:
    _, token = await relay.user()
    with caplog.at_level(logging.DEBUG):
        client = await relay.connect(token, how="query")
        await client.close()
        refused = await relay.connect("vr_wrong_token_value", how="query", expect_ok=False)
        await refused.closed()
        response = await relay.api("GET", f"/api/streams/list?token={token}")
        assert response.status == 401
        encoded = await relay.connect(token, how="none", expect_ok=False, path="/api/streams/ws?%74oken=" + token)
        assert (await encoded.expect("auth-ok"))["type"] == "auth-ok", "Tornado decodes the name: it is a token"
        await encoded.close()
        for path in (f"/api/streams/ws;token={token}", f"/api/alerts?ACCESS_TOKEN={token}", f"/api/x?%74oken={token}"):
            await relay.api("GET", path)
    text = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith(("tornado", "relay")))
    assert "token=[redacted]" in text
    assert token not in text
    assert token.replace("_", "%5F") not in text
    assert "vr_wrong_token_value" not in text


def test_cli_users_add_prints_the_token_alone_on_the_last_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    database = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    result = subprocess.run(
        [sys.executable, "-m", "relay", "users", "add", "frank", "--password", "pw", "--database-url", database],
        capture_output=True,
        text=True,
        check=True,
    )
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith("vr_")
    assert len(token) >= 40
    assert "created user frank" in result.stderr
    again = subprocess.run(
        [sys.executable, "-m", "relay", "users", "add", "frank", "--database-url", database],
        capture_output=True,
        text=True,
        check=True,
    )
    assert again.stdout.strip().splitlines()[-1] != token
    assert "new token for user frank" in again.stderr


async def test_a_user_attacked_from_many_addresses_is_slowed_and_still_gets_in_from_a_good_one(
    database_url: str,
) -> None:
    async with running_relay(database_url, ping_interval=0, behind_proxy=True) as relay:
        await relay.user("victim", "right password")

        async def login(password: str, address: str) -> Response:
            return await relay.api(
                "POST",
                "/api/auth/token",
                body={"username": "victim", "password": password},
                headers={"X-Real-Ip": address},
            )

        assert (await login("right password", "10.0.0.1")).status == 200  # the user's usual address
        answers = [(await login("guess", f"10.9.0.{index}")).status for index in range(12)]
        assert answers[:10] == [401] * 10, "the user's budget: 10 attempts at once (the user's own login cost none)"
        assert answers[10:] == [429] * 2, "then one every 6 s, from whichever address"
        refused = await login("right password", "10.8.0.1")
        assert refused.status == 429
        assert int(refused.headers["Retry-After"]) > 0
        assert (await login("right password", "10.0.0.1")).status == 200, "a good address still gets in"


async def test_an_office_behind_one_address_logs_in_all_morning_and_its_guesses_are_still_limited(
    database_url: str,
) -> None:
    """Only failed attempts spend an address's budget: thirty analysts behind one NAT all get in."""
    async with running_relay(database_url, ping_interval=0, behind_proxy=True) as relay:
        names = [f"analyst{n}" for n in range(30)]
        for name in names:
            await relay.user(name, "their password")

        async def login(name: str, password: str) -> int:
            body = {"username": name, "password": password}
            answer = await relay.api("POST", "/api/auth/token", body=body, headers={"X-Real-Ip": "10.1.1.1"})
            return answer.status

        assert [await login(name, "their password") for name in names] == [200] * 30
        guesses = [await login(f"analyst{n}", "guess") for n in range(12)]
        assert guesses[:10] == [401] * 10
        assert guesses[10:] == [429] * 2, "the address's budget still limits guesses"
