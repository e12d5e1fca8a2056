"""The analyst's review in Chromium: the frame behind an alert with its box, a batch marked, every tab agreeing.

A real phone streams to the workbench's relay and a real ML client raises alerts,
so the snapshots are frames the relay held; two tabs of one analyst show the
same unreviewed count, and a review in one reaches the other as the relay's
``alert-updated``.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.workbench.support import Phone, WorkbenchServer, send_alert, wait_for_alert_feed

PERSON = {"confidence": 0.9, "location": {"x": 0.25, "y": 0.2, "width": 0.3, "height": 0.5}, "objectType": "person"}


@pytest.mark.browser
def test_an_alert_shows_its_frame_and_a_batch_review_reaches_every_tab(workbench: WorkbenchServer, page: Page) -> None:
    analyst = workbench.user()
    stream_id = analyst.register("Front door")
    phone = Phone(analyst, stream_id).stream()
    try:
        analyst.login(page)
        expect(page.locator(f".tile[data-stream-id='{stream_id}'] .badge")).to_have_text("streaming")
        wait_for_alert_feed(page, stream_id)
        ids = [
            send_alert(analyst, stream_id, severity="high", message=f"person at the door {n}", metadata=PERSON)
            for n in range(3)
        ]
        counter = page.locator(".unreviewed-counter button")
        expect(counter).to_have_text("3 unreviewed")

        other_tab = page.context.new_page()
        other_tab.goto(workbench.base + "/workbench?page=History")
        other_counter = other_tab.locator(".unreviewed-counter button")
        expect(other_counter).to_have_text("3 unreviewed", timeout=20_000)  # the store's count: a new tab agrees
        wait_for_alert_feed(other_tab, stream_id)

        counter.click()  # opens History on the unreviewed alerts
        rows = page.locator(".history-table .tabulator-row").filter(visible=True)
        expect(rows).to_have_count(3)
        rows.filter(has_text="person at the door 0").locator(".tabulator-cell").nth(2).click()
        frame = page.locator(f".snapshot-frame[data-alert-id='{ids[0]}']").filter(visible=True)
        expect(frame).to_be_visible()
        picture = frame.locator("img")
        page.wait_for_function("img => img.complete && img.naturalWidth === 320", arg=picture.element_handle())
        box = frame.locator(".snapshot-box")
        expect(box).to_have_attribute("style", re.compile(r"left:25\.00%;top:20\.00%;width:30\.00%;height:50\.00%"))
        frame_rect, box_rect = frame.bounding_box(), box.bounding_box()
        assert frame_rect is not None
        assert box_rect is not None
        assert abs(box_rect["x"] - (frame_rect["x"] + 0.25 * frame_rect["width"])) < 2, "the box is on the picture"
        assert abs(box_rect["height"] - 0.5 * frame_rect["height"]) < 2
        expect(rows.first.locator("img.snapshot-thumbnail")).to_be_visible()

        page.keyboard.press("r")  # the alert in the details, reviewed by key
        expect(rows.filter(has_text="person at the door 0").locator(".verdict-reviewed")).to_be_visible()
        expect(other_counter).to_have_text("2 unreviewed")

        for n in (1, 2):
            rows.filter(has_text=f"person at the door {n}").locator(".tabulator-row-header input, input").first.check()
        page.locator(".review-false button").filter(visible=True).click()
        expect(page.locator(".review-status").filter(visible=True)).to_contain_text("2 alerts marked false positive")
        expect(other_counter).to_have_text("0 unreviewed")
        expect(counter).to_have_text("0 unreviewed")
        other_tab.get_by_role("button", name="History").click()
        other_tab.locator(".bk-btn", has_text="false positives").filter(visible=True).click()
        expect(other_tab.locator(".history-table .tabulator-row").filter(visible=True)).to_have_count(2)
    finally:
        phone.close()
