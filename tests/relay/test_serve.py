"""``relay serve`` as a user runs it: a real process, stopped by a signal."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import orjson
from websockets.asyncio.client import connect

from relay.store import Store
from tests.programs import relay_serve
from tests.support import GUARD


async def test_relay_serve_shuts_down_cleanly_on_sigterm(tmp_path: Path) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}"
    store = await Store.open(database)
    issued = await store.users.add_or_issue_token("ops")
    stream = await store.streams.register(issued.user_id, "cam", "mobile", {})
    await store.close()

    async with relay_serve(database) as (process, port):
        url = f"ws://127.0.0.1:{port}/api/streams/ws"
        async with connect(url, additional_headers={"Authorization": f"Bearer {issued.token}"}) as phone:
            await phone.recv()  # auth-ok
            await phone.send(orjson.dumps({"type": "register", "streamId": stream.id}).decode())
            assert orjson.loads(await phone.recv())["type"] == "registered"
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(GUARD):
                await phone.wait_closed()
            assert phone.close_code == 1001
        async with asyncio.timeout(GUARD):
            assert await process.wait() == 0

    store = await Store.open(database)
    try:
        stopped = await store.streams.get(stream.id)
        assert stopped is not None
        assert stopped.status == "offline", "the shutdown wrote the producer's stream offline"
    finally:
        await store.close()
