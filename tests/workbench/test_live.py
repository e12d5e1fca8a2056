"""The Live page in Chromium: tiles draw a real phone's frames, follow its status, and stay the analyst's own."""

from __future__ import annotations

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.workbench.support import BLUE, RED, Phone, WorkbenchServer, send_alert, wait_for_alert_feed

pytestmark = pytest.mark.browser

CENTRE_PIXEL = "c => Array.from(c.getContext('2d').getImageData(c.width / 2, c.height / 2, 1, 1).data)"


def tile(page: Page, stream_id: str) -> Locator:
    return page.locator(f".tile[data-stream-id='{stream_id}']")


def wait_for_width(page: Page, element: Locator, comparison: str, share: float) -> None:
    """Wait until ``element`` is narrower or wider than ``share`` of the window (layouts settle)."""
    page.wait_for_function(
        f"([e, share]) => e.getBoundingClientRect().width {comparison} share * window.innerWidth",
        arg=[element.element_handle(), share],
    )


def near(pixel: list[int], colour: tuple[int, int, int]) -> bool:
    return all(abs(channel - wanted) < 40 for channel, wanted in zip(pixel[:3], colour, strict=True))


def test_tiles_draw_the_frames_a_phone_sends_as_they_change(workbench: WorkbenchServer, page: Page) -> None:
    analyst = workbench.user()
    stream_id = analyst.register("Front door")
    phone = Phone(analyst, stream_id).stream()
    try:
        analyst.login(page)
        expect(tile(page, stream_id)).to_have_attribute("data-status", "streaming")
        expect(tile(page, stream_id).locator(".name")).to_have_text("Front door")
        canvas = tile(page, stream_id).locator("canvas")
        page.wait_for_function("c => Number(c.closest('.tile').dataset.frames) > 0", arg=canvas.element_handle())
        first = canvas.evaluate(CENTRE_PIXEL)
        assert near(first, RED) or near(first, BLUE), f"the canvas shows {first}, not a frame of the phone"
        page.wait_for_function(
            f"([c, first]) => {{ const p = ({CENTRE_PIXEL})(c); return Math.abs(p[0] - first[0]) > 100; }}",
            arg=[canvas.element_handle(), first],
        )
        second = canvas.evaluate(CENTRE_PIXEL)
        assert {near(first, RED), near(second, RED)} == {True, False}, (first, second)
        expect(tile(page, stream_id).locator(".stats")).to_contain_text("fps")
    finally:
        phone.close()


def test_status_badge_follows_the_phone_from_online_to_streaming_to_offline(
    workbench: WorkbenchServer, page: Page
) -> None:
    analyst = workbench.user()
    stream_id = analyst.register("Garage")
    analyst.login(page)
    badge = tile(page, stream_id).locator(".badge")
    expect(badge).to_have_text("offline")
    phone = Phone(analyst, stream_id)
    expect(badge).to_have_text("online")
    phone.stream()
    expect(badge).to_have_text("streaming")
    phone.close()
    expect(badge).to_have_text("offline")


def test_a_new_stream_appears_a_click_enlarges_a_tile_and_layouts_page_through_streams(
    workbench: WorkbenchServer, page: Page
) -> None:
    analyst = workbench.user()
    first = analyst.register("Hall")
    analyst.login(page)
    expect(tile(page, first)).to_be_visible()
    page.get_by_role("button", name="3×3").click()
    expect(page.locator(".tile")).to_have_count(1)

    later = analyst.register("Back yard")
    expect(tile(page, later)).to_be_visible()
    expect(tile(page, later).locator(".name")).to_have_text("Back yard")

    wait_for_width(page, tile(page, later), "<", 0.35)  # a cell of the 3×3 grid
    tile(page, later).click()
    expect(tile(page, first)).to_have_count(0)
    wait_for_width(page, tile(page, later), ">", 0.6)  # enlarged
    tile(page, later).click()
    expect(page.locator(".tile")).to_have_count(2)

    page.get_by_role("button", name="1", exact=True).click()
    expect(page.locator(".tile")).to_have_count(1)
    expect(tile(page, first)).to_be_visible()
    expect(page.get_by_text("streams 1–1 of 2")).to_be_visible()
    page.get_by_role("button", name="▶").click()
    expect(tile(page, later)).to_be_visible()
    expect(tile(page, first)).to_have_count(0)


def test_another_analysts_streams_and_alerts_never_appear(workbench: WorkbenchServer, page: Page) -> None:
    alice, bob = workbench.user("alice"), workbench.user("bob")
    own = alice.register("Alice's lobby")
    theirs = bob.register("Bob's secret room")
    phone = Phone(bob, theirs).stream()
    try:
        alice.login(page)
        expect(tile(page, own)).to_be_visible()
        wait_for_alert_feed(page, own)
        send_alert(bob, theirs, severity="critical", message="bob's private alert")
        marker = send_alert(alice, own, severity="low", message="alice's own alert")
        expect(page.locator(".notyf__toast", has_text="alice's own alert")).to_be_visible()

        expect(page.locator(".tile")).to_have_count(1)
        expect(page.get_by_text("Bob's secret room")).to_have_count(0)
        expect(page.locator(".notyf__toast", has_text="bob's private alert")).to_have_count(0)
        refused = page.evaluate(
            """streamId => new Promise(resolve => {
                const ws = new WebSocket(`ws://${location.host}/api/streams/ws`);
                ws.onmessage = event => {
                  const message = JSON.parse(event.data);
                  if (message.type === "auth-ok") ws.send(JSON.stringify({type: "subscribe", streamId}));
                  else { resolve(message); ws.close(); }
                };
            })""",
            theirs,
        )
        assert (refused["type"], refused["code"]) == ("error", "forbidden"), refused

        page.get_by_role("button", name="Timeline").click()
        plotted = page.wait_for_function(
            """marker => { const source = Bokeh.documents[0].get_model_by_name('timeline-alerts');
                          return source && source.data.id.includes(marker) && Array.from(source.data.stream); }""",
            arg=marker,
        ).json_value()
        assert set(plotted) == {own}
        page.get_by_role("button", name="History").click()
        expect(page.locator(".tabulator-row", has_text="alice's own alert")).to_be_visible()
        expect(page.locator(".tabulator-row")).to_have_count(1)
        expect(page.get_by_text("Bob's secret room")).to_have_count(0)
    finally:
        phone.close()


RECTANGLES = """([tile, alertId]) => {
  const canvas = tile.querySelector("canvas"), marker = tile.querySelector(`.alert[data-alert-id="${alertId}"]`);
  if (!marker || canvas.width !== 640 || canvas.height !== 272) return null;
  const shown = canvas.getBoundingClientRect();
  const scale = Math.min(shown.width / canvas.width, shown.height / canvas.height);
  const width = canvas.width * scale, height = canvas.height * scale;
  const rect = element => { const r = element.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  return {
    picture: [shown.left + (shown.width - width) / 2, shown.top + (shown.height - height) / 2, width, height],
    tile: rect(tile), box: rect(marker), label: rect(marker.querySelector(".alert-label")),
    name: rect(tile.querySelector(".name")), badge: rect(tile.querySelector(".badge")),
  };
}"""


def test_an_alert_box_is_drawn_on_the_letterboxed_picture_and_its_label_stays_in_the_tile(
    workbench: WorkbenchServer, page: Page
) -> None:
    """A 640×272 picture in a 4:3 tile has black bars above and below; the box is the picture's."""
    analyst = workbench.user()
    stream_id = analyst.register("Wide camera")
    phone = Phone(analyst, stream_id, size=(640, 272)).stream()
    try:
        analyst.login(page)
        expect(tile(page, stream_id)).to_have_attribute("data-status", "streaming")
        wait_for_alert_feed(page, stream_id)
        location = {"x": 0.5, "y": 0.0, "width": 0.25, "height": 0.5}  # at the picture's top edge
        alert_id = send_alert(analyst, stream_id, severity="high", message="a car", metadata={"location": location})
        found = page.wait_for_function(RECTANGLES, arg=[tile(page, stream_id).element_handle(), alert_id]).json_value()
    finally:
        phone.close()
    left, top, width, height = found["picture"]
    assert height < 0.6 * width, "the picture is letterboxed: bars above and below it"
    wanted = [left + 0.5 * width, top, left + 0.75 * width, top + 0.5 * height]
    assert found["box"] == pytest.approx(wanted, abs=2), (found["box"], wanted)
    label_left, label_top, label_right, label_bottom = found["label"]
    tile_left, tile_top, tile_right, tile_bottom = found["tile"]
    assert tile_left <= label_left < label_right <= tile_right
    assert tile_top <= label_top < label_bottom <= tile_bottom, "the label is not cut off at the tile's top"
    for covered in (found["name"], found["badge"]):
        assert label_top >= covered[3] or label_right <= covered[0] or label_left >= covered[2], (
            "the label covers the stream's name or status",
            found["label"],
            covered,
        )
