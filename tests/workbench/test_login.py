"""Logging in and out of the workbench in Chromium, the relay knowing the browser by its cookie,
and the cookie secret that survives restarts."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest
from playwright.sync_api import Page, Request, WebSocket, expect

from tests.workbench.support import WorkbenchServer
from workbench.server.login import persistent_secret

ALL_TEXT = """() => {
  const parts = [document.documentElement.outerHTML];
  const visit = root => root.querySelectorAll("*").forEach(node => {
    if (node.shadowRoot) { parts.push(node.shadowRoot.innerHTML); visit(node.shadowRoot); }
  });
  visit(document);
  return parts.join("\\n");
}"""


@pytest.mark.browser
def test_login_refuses_a_wrong_password_then_admits_and_logs_out(workbench: WorkbenchServer, page: Page) -> None:
    analyst = workbench.user()
    page.goto(workbench.base + "/workbench")
    expect(page).to_have_url(re.compile(r"/login"))
    page.fill("input[name=username]", analyst.name)
    page.fill("input[name=password]", "not the password")
    page.click("button[type=submit], input[type=submit]")
    expect(page.get_by_text("Invalid username or password")).to_be_visible()

    analyst.login(page)
    expect(page).to_have_url(re.compile(r"/workbench"))
    user_cookie = next(cookie for cookie in page.context.cookies() if cookie["name"] == "user")
    assert user_cookie["httpOnly"]

    page.locator("a.logout").click()
    expect(page).to_have_url(re.compile(r"/logout"))
    page.goto(workbench.base + "/workbench")
    expect(page).to_have_url(re.compile(r"/login"))
    answer = page.evaluate("fetch('/api/streams/list').then(r => r.status)")
    assert answer == 401


@pytest.mark.browser
def test_the_login_page_is_vigil_relays_own_and_asks_nothing_of_another_host(
    workbench: WorkbenchServer, page: Page
) -> None:
    """On a network without the internet the login page is whole: no CDN logo, no web font."""
    requested: list[str] = []

    def record(request: Request) -> None:
        requested.append(request.url)

    page.on("request", record)
    page.goto(workbench.base + "/workbench", wait_until="networkidle")
    expect(page).to_have_url(re.compile(r"/login"))
    expect(page).to_have_title(re.compile("Vigil Relay"))
    expect(page.get_by_role("heading", name="Vigil Relay")).to_be_visible()
    expect(page.get_by_label("Username")).to_be_visible()
    expect(page.get_by_label("Password")).to_be_visible()
    elsewhere = [url for url in requested if not url.startswith(workbench.base + "/") and not url.startswith("data:")]
    assert not elsewhere, f"the login page asked other hosts for {elsewhere}"
    assert any("/login" in url for url in requested)

    page.get_by_label("Username").fill("nobody")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("Invalid username or password!")


@pytest.mark.browser
def test_the_pages_reach_the_relay_as_the_analyst_without_a_token_in_sight(
    workbench: WorkbenchServer, page: Page
) -> None:
    analyst = workbench.user()
    stream_id = analyst.register("Kitchen")
    sockets: list[WebSocket] = []
    page.on("websocket", lambda socket: sockets.append(socket))
    analyst.login(page)
    expect(page.locator(f".tile[data-stream-id='{stream_id}'] .badge")).to_have_text("offline")

    relay_sockets = [socket.url for socket in sockets if "/api/streams/ws" in socket.url]
    assert relay_sockets, "the tiles and the alert feed talk to the relay themselves"
    assert all("token" not in url for url in relay_sockets), relay_sockets
    everything = page.evaluate(ALL_TEXT) + page.url
    assert analyst.token not in everything
    assert "vr_" not in everything, "no bearer token of any user is put in the page"
    listed = page.evaluate("fetch('/api/streams/list').then(r => r.json())")
    assert [stream["id"] for stream in listed["streams"]] == [stream_id]


def test_the_cookie_secret_is_made_once_private_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "state" / "secret"
    secret = persistent_secret(path)
    assert len(secret) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert persistent_secret(path) == secret, "a restart must not log every analyst out"


def test_a_cookie_secret_file_too_short_to_be_safe_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("short\n")
    with pytest.raises(ValueError, match="no usable cookie secret"):
        persistent_secret(path)
