"""``panel serve workbench`` is the relay too: the relay's API on the workbench's own port.

Each way of starting the workbench runs as a subprocess on its own port, and the
relay inside must answer exactly as ``relay serve`` does: REST with bearer tokens,
the WebSocket, JSON errors; the pages stay behind the login, and the login
cookie works for the relay's GET requests but never for one that changes
something.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

import pytest
import websocket

from relay.store import Store
from tests.workbench.support import GUARD, WorkbenchServer, expect, http, run_async

COMMANDS = {
    "panel serve workbench": [],
    "panel serve workbench --plugins workbench.plugin": ["--plugins", "workbench.plugin"],
    "python -m workbench": None,
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_the_workbench_serves_the_relay_api_on_its_own_port(tmp_path: Path, command: str) -> None:
    server = WorkbenchServer(tmp_path, panel_serve_flags=COMMANDS[command]).start()
    try:
        analyst = server.user()
        assert http("GET", server.base + "/api/health") == (200, {"status": "ok"})
        status, document = http("GET", server.base + "/api/openapi.json")
        assert status == 200
        assert {"/api/streams/register", "/api/streams/list", "/api/alerts"} <= set(document["paths"])

        status, issued = http(
            "POST", server.base + "/api/auth/token", body={"username": analyst.name, "password": analyst.password}
        )
        assert status == 200, issued
        token = issued["token"]
        stream_id = analyst.register("Porch")
        status, listed = http("GET", server.base + "/api/streams/list", token=token)
        assert [stream["id"] for stream in listed["streams"]] == [stream_id]
        assert http("GET", server.base + "/api/streams/list")[0] == 401
        status, missing = http("GET", server.base + "/api/no-such-thing", token=token)
        assert (status, missing["error"]["code"]) == (404, "not-found")

        ws = websocket.create_connection(
            server.base.replace("http", "ws") + "/api/streams/ws", header=[f"Authorization: Bearer {token}"]
        )
        try:
            assert expect(ws, "auth-ok")["userId"] == issued["userId"]
            ws.send(json.dumps({"type": "subscribe", "streamId": stream_id, "consumes": ["stream-status"]}))
            expect(ws, "subscribed")
            assert expect(ws, "stream-status")["status"] == "offline"
        finally:
            ws.close()

        check_pages_and_login_cookie(server, analyst.name, analyst.password, stream_id)
    finally:
        server.stop()
    log = server.log.read_text()
    assert "Traceback" not in log
    added_by_the_app = COMMANDS[command] == []
    assert ("relay routes added under /api" in log) == added_by_the_app, "routes are added once, by one of the ways"


def check_pages_and_login_cookie(server: WorkbenchServer, username: str, password: str, stream_id: str) -> None:
    cookies = CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(cookies), NoRedirect())
    with pytest.raises(urllib.error.HTTPError) as redirected:
        browser.open(server.base + "/workbench", timeout=GUARD)
    assert redirected.value.code == 302
    assert "/login" in redirected.value.headers["Location"]

    form = urllib.parse.urlencode({"username": username, "password": "wrong"}).encode()
    with pytest.raises(urllib.error.HTTPError) as refused:
        browser.open(server.base + "/login", data=form, timeout=GUARD)
    assert "error=" in refused.value.headers["Location"]
    assert not any(cookie.name == "user" for cookie in cookies)

    form = urllib.parse.urlencode({"username": username, "password": password}).encode()
    with pytest.raises(urllib.error.HTTPError):  # 302 to the page: logged in
        browser.open(server.base + "/login", data=form, timeout=GUARD)
    assert any(cookie.name == "user" for cookie in cookies)

    with browser.open(server.base + "/api/streams/list", timeout=GUARD) as listed:
        assert [stream["id"] for stream in json.loads(listed.read())["streams"]] == [stream_id]
    register = urllib.request.Request(
        server.base + "/api/streams/register",
        data=json.dumps({"deviceName": "planted by another site"}).encode(),
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as forbidden:
        browser.open(register, timeout=GUARD)
    assert forbidden.value.code == 401, "the login cookie must not authorise requests that change something"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """Show redirects to the test instead of following them."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def test_a_session_by_login_cookie_ends_when_its_user_is_removed(tmp_path: Path) -> None:
    """No token to revoke: the relay's watch notices the user is gone (as ``relay users remove`` leaves it)."""
    server = WorkbenchServer(tmp_path).start()
    try:
        analyst = server.user()
        cookies = CookieJar()
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(cookies), NoRedirect())
        form = urllib.parse.urlencode({"username": analyst.name, "password": analyst.password}).encode()
        with pytest.raises(urllib.error.HTTPError):  # 302 to the page: logged in
            browser.open(server.base + "/login", data=form, timeout=GUARD)
        cookie = "; ".join(f"{c.name}={c.value}" for c in cookies)
        ws = websocket.create_connection(
            server.base.replace("http", "ws") + "/api/streams/ws",
            header=[f"Cookie: {cookie}"],
            origin=server.base,
            timeout=GUARD,
        )
        try:
            assert expect(ws, "auth-ok")["type"] == "auth-ok"

            async def remove() -> None:
                store = await Store.open(server.database_url)
                try:
                    user = await store.users.by_name(analyst.name)
                    assert user is not None
                    await store.users.remove(user.id)
                finally:
                    await store.close()

            run_async(remove)
            opcode, data = ws.recv_data(control_frame=True)
            assert opcode == websocket.ABNF.OPCODE_CLOSE
            assert (int.from_bytes(data[:2], "big"), data[2:].decode()) == (1008, "user removed")
        finally:
            ws.close()
    finally:
        server.stop()
