"""The Streams page in Chromium: a stream renamed everywhere, and deleted after a confirmation."""

from __future__ import annotations

import json

import pytest
import websocket
from playwright.sync_api import Page, expect

from tests.workbench import support
from tests.workbench.support import GUARD, WorkbenchServer, http


@pytest.mark.browser
def test_a_stream_is_renamed_and_then_deleted_after_a_confirmation(workbench: WorkbenchServer, page: Page) -> None:
    analyst = workbench.user()
    stream_id = analyst.register("Mistake")
    keep = analyst.register("Garage")
    phone = websocket.create_connection(
        workbench.base.replace("http", "ws") + "/api/streams/ws",
        header=[f"Authorization: Bearer {analyst.token}"],
        timeout=GUARD,
    )
    try:
        support.expect(phone, "auth-ok")
        phone.send(json.dumps({"type": "register", "streamId": stream_id}))
        support.expect(phone, "registered")
        analyst.login(page, "/workbench?page=Streams")
        streams = page.locator(".streams-table").filter(visible=True)
        expect(streams).to_contain_text("Mistake")
        page.locator("select").filter(visible=True).select_option(label="Mistake")
        page.locator(".stream-new-name input").filter(visible=True).fill("Back door")
        page.locator(".rename button").filter(visible=True).click()
        expect(streams).to_contain_text("Back door")
        status, body = http("GET", workbench.base + "/api/streams/list", token=analyst.token)
        assert status == 200
        assert {stream["id"]: stream["deviceName"] for stream in body["streams"]}[stream_id] == "Back door"

        page.locator(".stream-new-name input").filter(visible=True).fill("   ")
        page.locator(".rename button").filter(visible=True).click()
        expect(page.locator(".streams-message").filter(visible=True)).to_contain_text("deviceName must be")

        page.locator(".delete button").filter(visible=True).click()
        question = page.locator(".delete-question").filter(visible=True)
        expect(question).to_contain_text("Delete Back door with its 0 alerts")
        page.locator(".cancel-delete button").filter(visible=True).click()
        expect(question).to_have_count(0)
        expect(streams).to_contain_text("Back door")
        page.locator(".delete button").filter(visible=True).click()
        page.locator(".confirm-delete button").filter(visible=True).click()
        expect(streams).not_to_contain_text("Back door")
        expect(streams).to_contain_text("Garage")
        assert support.expect(phone, "stream-deleted")["streamId"] == stream_id
        status, body = http("GET", workbench.base + "/api/streams/list", token=analyst.token)
        assert [stream["id"] for stream in body["streams"]] == [keep]
    finally:
        phone.close()
