"""``relay users`` and ``relay tokens`` on the database of a running relay, as an operator runs them."""

from __future__ import annotations

import asyncio
import contextlib
import io
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from relay.cli import main
from relay.clock import utcnow
from relay.store.models import Alert, ApiToken, VideoStream
from tests.support import RelayHarness


async def relay_cli(*args: str, status: int = 0) -> subprocess.CompletedProcess[str]:
    """``relay ARGS`` in a thread of this process (its own event loop, as from a shell), its output captured.

    A process of its own would cost seconds of imports per command; one command runs so, below.
    """

    def run() -> subprocess.CompletedProcess[str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exit:
                code = int(exit.code or 0)
        return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())

    result = await asyncio.to_thread(run)
    assert result.returncode == status, (result.stdout, result.stderr)
    return result


async def relay_process(*args: str) -> subprocess.CompletedProcess[str]:
    """``relay ARGS`` as a process of its own."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "relay", *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await process.communicate()
    return subprocess.CompletedProcess(args, process.returncode or 0, out.decode(), err.decode())


async def test_an_operator_manages_users_and_tokens_while_the_relay_runs(relay: RelayHarness, tmp_path: Path) -> None:
    db = ("--database-url", relay.relay.settings.database_url)
    first = (await relay_cli("users", "add", "ana", "--password", "pw", *db)).stdout.strip().splitlines()[-1]
    second = (await relay_cli("users", "add", "ana", *db)).stdout.strip().splitlines()[-1]
    stream_id = await relay.stream(first)
    ml = await relay.consumer(first, stream_id, consumes=[], produces=["alert"])
    await ml.send({"type": "alert", "streamId": stream_id, "severity": "high", "message": "person"})
    await ml.expect("alert-stored")
    watching = await relay.consumer(second, stream_id, consumes=["alert"])

    listed = (await relay_cli("users", "list", *db)).stdout.splitlines()
    assert listed[0].split() == ["NAME", "ID", "CREATED", "TOKENS", "STREAMS"]
    ana = next(line.split() for line in listed[1:] if line.split()[0] == "ana")
    assert (ana[1].startswith("user_"), ana[3], ana[4]) == (True, "2", "1")

    tokens = await relay_cli("tokens", "list", "ana", *db)
    assert first not in tokens.stdout, "never a whole token"
    assert second not in tokens.stdout
    assert f"vr_{first[3:11]}…" in tokens.stdout
    assert f"vr_{second[3:11]}…" in tokens.stdout
    assert len(tokens.stdout.splitlines()) == 3

    async with relay.relay.store.engine.begin() as connection:  # two tokens whose prefixes begin alike
        await connection.execute(
            ApiToken.__table__.insert(),
            [
                {"userId": ana[1], "tokenHash": "a" * 64, "prefix": "zzzz0001", "createdAt": utcnow()},
                {"userId": ana[1], "tokenHash": "b" * 64, "prefix": "zzzz0002", "createdAt": utcnow()},
            ],
        )
    ambiguous = await relay_process("tokens", "revoke", "vr_zzzz", *db)
    assert ambiguous.returncode == 1
    assert "2 tokens match" in ambiguous.stderr
    assert "no token match" in (await relay_cli("tokens", "revoke", "yyyyyyyy", *db, status=1)).stderr
    assert "at least 4" in (await relay_cli("tokens", "revoke", "vr_zz", *db, status=1)).stderr
    await relay_cli("tokens", "revoke", "zzzz0001", *db)

    revoked_first = await relay_process("tokens", "revoke", f"vr_{first[3:11]}", *db)
    assert revoked_first.returncode == 0, revoked_first.stderr
    assert await ml.closed() == (1008, "token revoked"), "the running relay noticed by itself"
    assert (await relay.api("GET", "/api/streams/list", token=first)).status == 401
    assert (await relay.api("GET", "/api/streams/list", token=second)).status == 200

    await relay_cli("users", "passwd", "ana", "--password", "new password", *db)
    login = {"username": "ana", "password": "new password"}
    assert (await relay.api("POST", "/api/auth/token", body=login)).status == 200
    assert (await relay.api("POST", "/api/auth/token", body={**login, "password": "pw"})).status == 401

    revoked = await relay_cli("tokens", "revoke-all", "ana", *db)
    assert "revoked 3 tokens" in revoked.stderr  # the second, the other zzzz one and the login's
    assert await watching.closed() == (1008, "token revoked")
    assert "(older than 0006)" not in (await relay_cli("tokens", "list", "ana", *db)).stdout

    _, token = await relay.user("bo")
    await relay_cli("users", "remove", "ana", *db)
    assert [line.split()[0] for line in (await relay_cli("users", "list", *db)).stdout.splitlines()[1:]] == ["bo"]
    async with relay.relay.store.engine.connect() as connection:
        assert await connection.scalar(select(func.count()).select_from(VideoStream)) == 0
        assert await connection.scalar(select(func.count()).select_from(Alert)) == 0
    assert (await relay.api("GET", "/api/streams/list", token=token)).status == 200

    for command in (
        ("users", "remove", "ana"),
        ("tokens", "list", "ana"),
        ("users", "passwd", "ana", "--password", "x"),
    ):
        assert "no user named 'ana'" in (await relay_cli(*command, *db, status=1)).stderr
    missing = ("--database-url", f"sqlite+aiosqlite:///{tmp_path / 'nothing.db'}")
    for command in (("users", "list"), ("tokens", "revoke", "abcdefgh"), ("tokens", "revoke-all", "bo")):
        assert "there is no database" in (await relay_cli(*command, *missing, status=1)).stderr
    assert not (tmp_path / "nothing.db").exists()
